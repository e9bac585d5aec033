// The workload's parameters and the fixed layout of its buffers in guest RAM. Both VMs use the
// same parameters; each tells the other only where its area starts (a GPA) and its rkey.
import { WorkloadError, WorkloadErrorCode } from './errors.js';

export interface WorkloadConfig {
  /** RC QPs between the two VMs (connection q joins QP q on each side). */
  qps: number;
  /** Payload of each WRITE, SEND and READ. */
  messageBytes: number;
  /** Slots per region: operation k of a kind uses slot k mod slots. */
  slots: number;
  /** Send work requests outstanding per QP at most. */
  window: number;
  /** Receives kept posted per QP. */
  recvDepth: number;
  /** Seeds every payload. */
  seed: number;
}

export const DEFAULT_WORKLOAD: WorkloadConfig = { qps: 8, messageBytes: 4096, slots: 16, window: 8, recvDepth: 16, seed: 20261126 };

export const MAX_QPS = 256;
export const MAX_MESSAGE_BYTES = 1 << 20;
export const MAX_SLOTS = 1024;

/** Throws WorkloadError(BadConfig) unless `c` is usable. */
export function checkConfig(c: WorkloadConfig): WorkloadConfig {
  const int = (name: string, v: unknown, min: number, max: number) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new WorkloadError(WorkloadErrorCode.BadConfig, `${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
    }
  };
  int('qps', c.qps, 1, MAX_QPS);
  int('messageBytes', c.messageBytes, 8, MAX_MESSAGE_BYTES);
  int('slots', c.slots, 2, MAX_SLOTS);
  int('window', c.window, 1, c.slots);
  int('recvDepth', c.recvDepth, 1, c.slots);
  int('seed', c.seed, 0, 0xffffffff);
  // Receive r lands in slot r mod slots; messages alternate WRITE-with-immediate and SEND, so an
  // even slot count keeps SEND payloads in their own slots (the model relies on it).
  if (c.slots % 2 !== 0) throw new WorkloadError(WorkloadErrorCode.BadConfig, `slots must be even, got ${c.slots}`);
  return c;
}

/** Offsets of one QP's regions inside its block. */
export interface QpRegions {
  /** Payloads this side WRITEs to the peer (filled by the application before posting). */
  writeSrc: number;
  /** Payloads this side SENDs. */
  sendSrc: number;
  /** Where this side's READs land. */
  readDst: number;
  /** Old values returned by this side's fetch-adds, 8 bytes a slot. */
  faResult: number;
  /** Where the peer's WRITEs land. */
  writeDst: number;
  /** Where the peer's SENDs land (the receives point here). */
  recvDst: number;
  /** What the peer READs (filled once at setup). */
  readSrc: number;
  /** The counter the peer's fetch-adds increment (u64). */
  counter: number;
  /** Size of the block. */
  blockBytes: number;
}

const align = (n: number, to: number) => Math.ceil(n / to) * to;

export function qpRegions(c: WorkloadConfig): QpRegions {
  const big = align(c.slots * c.messageBytes, 64);
  const small = align(c.slots * 8, 64);
  const writeSrc = 0;
  const sendSrc = writeSrc + big;
  const readDst = sendSrc + big;
  const faResult = readDst + big;
  const writeDst = faResult + small;
  const recvDst = writeDst + big;
  const readSrc = recvDst + big;
  const counter = readSrc + big;
  return { writeSrc, sendSrc, readDst, faResult, writeDst, recvDst, readSrc, counter, blockBytes: align(counter + 8, 4096) };
}

/** Bytes of guest RAM the workload needs for all its QPs. */
export function areaBytes(c: WorkloadConfig): number {
  return qpRegions(c).blockBytes * c.qps;
}
