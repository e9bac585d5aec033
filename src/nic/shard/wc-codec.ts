// Work completions as fixed 64-byte records, the form in which a QP shard's completions cross to
// the device's thread through a ring in shared memory (sharded-verbs.ts). Little-endian:
//   0 wrId u64 | 8 status | 12 opcode | 16 vendorErr | 20 byteLen | 24 immData | 28 qpNum
//   32 srcQp | 36 wcFlags | 40 pkeyIndex | 44 slid | 48 sl | 52 dlidPathBits
//   56 solicited (0 absent, 1 false, 2 true) | 60 reserved
import type { WcOpcode, WcStatus } from '../types.js';
import type { WorkCompletion } from '../verbs.js';

export const WC_RECORD_BYTES = 64;
/** Completions per record of a shard's completion ring: one CQ's batch (the ring's ip field names the CQ). */
export const WCS_PER_RECORD = 64;
/**
 * A completion ring record's kind (the ring's port field): a CQ's completions (ip: the CQ), the
 * CQ overran (ip: the CQ), or work requests the shard refused at posting (ip: the QPN; the
 * bytes REFUSED_BYTES per work request: u64 wrId, u32 completion opcode, u32 1 if a receive).
 */
export const RECORD_WCS = 0;
export const RECORD_OVERRUN = 1;
export const RECORD_REFUSED = 2;
export const REFUSED_BYTES = 16;

/** A work request a shard refused at posting: its id, its completion's opcode, whether a receive. */
export interface RefusedWr {
  wrId: bigint;
  opcode: WcOpcode;
  recv: boolean;
}

/** Write `r` at `off` of `view` (REFUSED_BYTES bytes). */
export function encodeRefused(view: DataView, off: number, r: RefusedWr): void {
  view.setBigUint64(off, BigInt.asUintN(64, r.wrId), true);
  view.setUint32(off + 8, r.opcode, true);
  view.setUint32(off + 12, r.recv ? 1 : 0, true);
}

/** The refused work requests a RECORD_REFUSED record holds. */
export function decodeRefused(bytes: Uint8Array): RefusedWr[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: RefusedWr[] = [];
  for (let off = 0; off + REFUSED_BYTES <= bytes.length; off += REFUSED_BYTES) {
    out.push({ wrId: view.getBigUint64(off, true), opcode: view.getUint32(off + 8, true) as WcOpcode, recv: view.getUint32(off + 12, true) === 1 });
  }
  return out;
}

const U32_FIELDS = ['status', 'opcode', 'vendorErr', 'byteLen', 'immData', 'qpNum', 'srcQp', 'wcFlags', 'pkeyIndex', 'slid', 'sl', 'dlidPathBits'] as const;

/** Write `wc` at `off` of `view` (WC_RECORD_BYTES bytes). */
export function encodeWc(view: DataView, off: number, wc: WorkCompletion): void {
  view.setBigUint64(off, BigInt.asUintN(64, wc.wrId), true);
  for (let i = 0; i < U32_FIELDS.length; i++) view.setUint32(off + 8 + 4 * i, (wc[U32_FIELDS[i]] as number) >>> 0, true);
  view.setUint32(off + 56, wc.solicited === undefined ? 0 : wc.solicited ? 2 : 1, true);
  view.setUint32(off + 60, 0, true);
}

/** The completion a record holds; RangeError for a record no encoder wrote. */
export function decodeWc(bytes: Uint8Array): WorkCompletion {
  if (bytes.length !== WC_RECORD_BYTES) throw new RangeError(`a completion record is ${WC_RECORD_BYTES} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u = (i: number): number => view.getUint32(8 + 4 * i, true);
  const sol = view.getUint32(56, true);
  if (sol > 2) throw new RangeError(`a completion record's solicited field is ${sol}`);
  const wc: WorkCompletion = {
    wrId: view.getBigUint64(0, true),
    status: u(0) as WcStatus,
    opcode: u(1) as WcOpcode,
    vendorErr: u(2),
    byteLen: u(3),
    immData: u(4),
    qpNum: u(5),
    srcQp: u(6),
    wcFlags: u(7),
    pkeyIndex: u(8),
    slid: u(9),
    sl: u(10),
    dlidPathBits: u(11),
  };
  if (sol !== 0) wc.solicited = sol === 2;
  return wc;
}
