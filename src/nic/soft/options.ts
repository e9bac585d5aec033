// SoftRoce's options and default device limits (docs/device-spec.md, "Device limits").
import type { KernelExports } from '../../wasm/loader.js';
import type { KernelEngine } from '../../virtio/queue.js';
import { PathMtu } from '../types.js';
import type { DeviceLimits } from '../verbs.js';

export interface SoftRoceOptions {
  /** Which engine runs the MR translation and ICRC kernels: the Wasm kernels or their TS twins. */
  engine?: KernelEngine;
  /** Kernels already instantiated on the device memory, to share one instance. */
  kernels?: KernelExports;
  /** Limits to lower (or raise) from DEFAULT_LIMITS. */
  limits?: Partial<DeviceLimits>;
  /** The port's MTU: the largest path MTU an RC QP may use and the MTU of UD messages. */
  portMtu?: PathMtu;
  /** Most PSNs an RC requester keeps unacknowledged. */
  windowPsns?: number;
  /** Packets one requester run sends before yielding to the event loop. */
  budgetPackets?: number;
  /**
   * Consecutive local ACK timeouts without progress double the retransmission interval up to
   * this (never below the QP's timeout; 0 keeps every interval at the timeout). timers.ts says why.
   */
  retryBackoffCeilingMs?: number;
  /**
   * Called as a responder QP is about to execute an atomic request (QpHooks.beforeAtomic), with
   * where it lands and the value there before and after: a durable backend commits it as an
   * intent record (src/backend). If it throws, the atomic is not executed.
   */
  beforeAtomic?: (intent: AtomicIntent) => void;
}

/** An atomic about to run: the QP and PSN, the request, and its memory word before and after. */
export interface AtomicIntent {
  qpn: number;
  psn: number;
  opcode: number;
  rkey: number;
  va: bigint;
  /** Byte offset of the target word in the device memory. */
  offset: number;
  before: bigint;
  after: bigint;
}

export const DEFAULT_LIMITS: Readonly<DeviceLimits> = Object.freeze({
  maxQp: 1024,
  maxQpWr: 4096,
  maxSge: 32,
  maxInlineBytes: 256,
  maxCq: 1024,
  maxCqe: 65536,
  maxMr: 65536,
  maxMrBytes: 2 ** 32,
  maxPd: 1024,
  maxSrq: 256,
  maxSrqWr: 4096,
  maxAh: 4096,
  maxQpRdAtom: 16,
  maxQpInitRdAtom: 16,
  maxMsgBytes: 2 ** 31,
  maxGid: 16,
});

export const DEFAULT_WINDOW_PSNS = 128;
export const DEFAULT_BUDGET_PACKETS = 256;
/**
 * Covers the scheduling pauses of a loaded host: at load 8 on 2 cores, processes were seen to
 * go 30-70 ms without running. Timeouts of 134 ms (attribute 15) and longer never back off.
 */
export const DEFAULT_RETRY_BACKOFF_CEILING_MS = 128;
/** QPNs 0 and 1 are the special QPs (SMI, GSI), which a RoCE soft device does not offer. */
export const MIN_QPN = 16;
export const MAX_QPN = 0xffffff;
