// Encoding work requests the way a guest driver lays them out (docs/device-spec.md §10.2, §10.4).
import { RECV_WQE_HEADER_BYTES, SEND_WQE_HEADER_BYTES, SGE_BYTES, SendFlag, SendOpcode } from '../../device/abi.js';
import { setU64 } from '../../device/bytes.js';
import { type WireSge, writeSge } from '../../device/structs.js';

export type { WireSge as Sge };

export interface SendRequest {
  wrId: bigint;
  opcode: SendOpcode;
  /** SendFlag bits; INLINE is added when `inline` is given. */
  flags?: number;
  sgList?: readonly WireSge[];
  inline?: Uint8Array;
  /** ImmDt as a u32 whose big-endian bytes are sent. */
  imm?: number;
  invalidateRkey?: number;
  remoteAddr?: number;
  rkey?: number;
  compareAdd?: bigint;
  swap?: bigint;
  ah?: number;
  remoteQpn?: number;
  remoteQkey?: number;
}

export interface RecvRequest {
  wrId: bigint;
  sgList: readonly WireSge[];
}

export function sendWqeBytes(req: SendRequest): number {
  return SEND_WQE_HEADER_BYTES + (req.inline !== undefined ? req.inline.length : (req.sgList?.length ?? 0) * SGE_BYTES);
}

export function encodeSendWqe(req: SendRequest, out: Uint8Array = new Uint8Array(sendWqeBytes(req))): Uint8Array {
  const n = sendWqeBytes(req);
  out.fill(0, 0, n);
  const v = new DataView(out.buffer, out.byteOffset, n);
  const sges = req.sgList ?? [];
  let flags = req.flags ?? 0;
  if (req.inline !== undefined) flags |= SendFlag.INLINE;
  setU64(v, 0, req.wrId);
  v.setUint8(8, req.opcode);
  v.setUint8(9, flags);
  v.setUint16(10, req.inline !== undefined ? 0 : sges.length, true);
  if (req.opcode === SendOpcode.SendWithImm || req.opcode === SendOpcode.RdmaWriteWithImm) v.setUint32(12, req.imm ?? 0, false);
  if (req.opcode === SendOpcode.SendWithInv || req.opcode === SendOpcode.LocalInv) v.setUint32(12, req.invalidateRkey ?? 0, true);
  v.setUint32(16, req.inline?.length ?? 0, true);
  if (req.ah !== undefined) {
    v.setUint32(24, req.ah, true);
    v.setUint32(28, req.remoteQpn ?? 0, true);
    v.setUint32(32, req.remoteQkey ?? 0, true);
  } else if (req.opcode === SendOpcode.AtomicCmpAndSwp || req.opcode === SendOpcode.AtomicFetchAndAdd) {
    setU64(v, 24, req.remoteAddr ?? 0);
    setU64(v, 32, req.compareAdd ?? 0n);
    setU64(v, 40, req.swap ?? 0n);
    v.setUint32(48, req.rkey ?? 0, true);
  } else if (req.remoteAddr !== undefined) {
    setU64(v, 24, req.remoteAddr);
    v.setUint32(32, req.rkey ?? 0, true);
  }
  if (req.inline !== undefined) out.set(req.inline, SEND_WQE_HEADER_BYTES);
  else sges.forEach((s, i) => writeSge(v, SEND_WQE_HEADER_BYTES + i * SGE_BYTES, s));
  return out.subarray(0, n);
}

export function recvWqeBytes(req: RecvRequest): number {
  return RECV_WQE_HEADER_BYTES + req.sgList.length * SGE_BYTES;
}

export function encodeRecvWqe(req: RecvRequest, out: Uint8Array = new Uint8Array(recvWqeBytes(req))): Uint8Array {
  const n = recvWqeBytes(req);
  out.fill(0, 0, n);
  const v = new DataView(out.buffer, out.byteOffset, n);
  setU64(v, 0, req.wrId);
  v.setUint16(8, req.sgList.length, true);
  req.sgList.forEach((s, i) => writeSge(v, RECV_WQE_HEADER_BYTES + i * SGE_BYTES, s));
  return out.subarray(0, n);
}
