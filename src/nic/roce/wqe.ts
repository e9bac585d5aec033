// Work queue entries as the transport sees them: a send WQE carries its work request (already
// checked and copied at post time) plus the transport's progress through it; a receive WQE is
// a scatter list. PSNs of a message are consecutive, so a WQE needs only its first PSN and count.
import type { Sge } from '../verbs.js';
import { WcStatus, WrOpcode } from '../types.js';

/** Where a send WQE is in its life (after rxe's wqe_state). */
export enum WqeState {
  /** Posted, no packet sent yet. */
  Posted,
  /** Some packets sent. */
  Processing,
  /** Every packet sent; waiting for the response (RC) or the completer (UD). */
  Pending,
  /** Finished without needing a response (UD); the completer retires it. */
  Done,
  /** Failed before or while sending; the completer reports `status` and the QP stops. */
  Error,
}

/** Where a UD work request goes. */
export interface UdDestination {
  readonly dstIp: string;
  readonly remoteQpn: number;
  readonly remoteQkey: number;
}

export interface SendWqe {
  readonly wrId: bigint;
  readonly opcode: WrOpcode;
  readonly flags: number;
  readonly sgList: readonly Sge[];
  /** Inline payload copied at post time, or null to gather from sgList. */
  readonly inline: Uint8Array | null;
  readonly lengthBytes: number;
  readonly immData: number;
  readonly remoteAddr: bigint;
  readonly rkey: number;
  readonly compareAdd: bigint;
  readonly swap: bigint;
  readonly ud: UdDestination | null;
  /** Report a completion on success too (SIGNALED, or the QP's sigAll). */
  readonly signaled: boolean;
  state: WqeState;
  status: WcStatus;
  /** First PSN of the message; psnCount PSNs follow from it (a READ takes one per response). */
  firstPsn: number;
  psnCount: number;
  /** Index of the next packet to send; a READ resumed after a retry restarts from here. */
  nextPacket: number;
  /** SGEs were checked when the requester first took the WQE. */
  checked: boolean;
}

export interface RecvWqe {
  readonly wrId: bigint;
  readonly sgList: readonly Sge[];
  readonly lengthBytes: number;
}

export function isReadOrAtomic(op: WrOpcode): boolean {
  return op === WrOpcode.RdmaRead || op === WrOpcode.AtomicCmpAndSwp || op === WrOpcode.AtomicFetchAndAdd;
}

export function isAtomic(op: WrOpcode): boolean {
  return op === WrOpcode.AtomicCmpAndSwp || op === WrOpcode.AtomicFetchAndAdd;
}

