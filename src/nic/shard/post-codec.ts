// Work requests as bytes, the form in which posts cross from the device's thread to a QP shard in
// a worker, through the shard's post ring (sharded-verbs.ts, shard-worker.ts). Numbers travel as
// float64 (exact for every JS number) and 64-bit values as u64, little-endian. A work request is
//   u32 fields present | u32 SGEs | u64 wrId | f64 opcode | f64 flags | SGEs (f64 addr, length,
//   lkey) | then each present field in the order of OPTIONAL: f64, u64 for the bigints, and for
//   inline bytes a u32 length and the bytes padded to 8
// and a receive work request is u32 SGEs | u32 0 | u64 wrId | SGEs.
// The decoder checks every length against the record, so a record it did not write cannot make it
// read outside the record (the ring is trusted, but a bug should fail loudly, not quietly).
import type { RecvWr, SendWr, Sge } from '../verbs.js';

/** A post ring record's kind (the ring's port field; its ip field is the QPN). */
export const POST_SEND = 0;
export const POST_RECV = 1;

const OPTIONAL = ['immData', 'invalidateRkey', 'remoteAddr', 'rkey', 'ah', 'remoteQpn', 'remoteQkey'] as const;
const BIG = ['compareAdd', 'swap'] as const;
const INLINE_BIT = 1 << 9;
const SGE_BYTES = 24;
/** Most SGEs one decoded work request may have (above any device's maxSge). */
const MAX_SGES = 1024;

const pad8 = (n: number): number => (n + 7) & ~7;

/** Bytes `wr` takes encoded. */
export function sendWrBytes(wr: SendWr): number {
  let n = 32 + wr.sgList.length * SGE_BYTES;
  for (const k of OPTIONAL) if (wr[k] !== undefined) n += 8;
  for (const k of BIG) if (wr[k] !== undefined) n += 8;
  if (wr.inline !== undefined) n += 8 + pad8(wr.inline.length);
  return n;
}

export function recvWrBytes(wr: RecvWr): number {
  return 16 + wr.sgList.length * SGE_BYTES;
}

function putSges(v: DataView, off: number, sges: readonly Sge[]): number {
  for (const s of sges) {
    v.setFloat64(off, s.addr, true);
    v.setFloat64(off + 8, s.length, true);
    v.setFloat64(off + 16, s.lkey, true);
    off += SGE_BYTES;
  }
  return off;
}

/** Write `wr` at `off`; returns the offset after it. */
export function encodeSendWr(bytes: Uint8Array, v: DataView, off: number, wr: SendWr): number {
  let mask = 0;
  OPTIONAL.forEach((k, i) => {
    if (wr[k] !== undefined) mask |= 1 << i;
  });
  BIG.forEach((k, i) => {
    if (wr[k] !== undefined) mask |= 1 << (OPTIONAL.length + i);
  });
  if (wr.inline !== undefined) mask |= INLINE_BIT;
  v.setUint32(off, mask, true);
  v.setUint32(off + 4, wr.sgList.length, true);
  v.setBigUint64(off + 8, BigInt.asUintN(64, wr.wrId), true);
  v.setFloat64(off + 16, wr.opcode, true);
  v.setFloat64(off + 24, wr.flags, true);
  off = putSges(v, off + 32, wr.sgList);
  for (const k of OPTIONAL) {
    if (wr[k] === undefined) continue;
    v.setFloat64(off, wr[k], true);
    off += 8;
  }
  for (const k of BIG) {
    if (wr[k] === undefined) continue;
    v.setBigUint64(off, BigInt.asUintN(64, wr[k]), true);
    off += 8;
  }
  if (wr.inline !== undefined) {
    v.setUint32(off, wr.inline.length, true);
    bytes.set(wr.inline, off + 8);
    off += 8 + pad8(wr.inline.length);
  }
  return off;
}

export function encodeRecvWr(v: DataView, off: number, wr: RecvWr): number {
  v.setUint32(off, wr.sgList.length, true);
  v.setUint32(off + 4, 0, true);
  v.setBigUint64(off + 8, BigInt.asUintN(64, wr.wrId), true);
  return putSges(v, off + 16, wr.sgList);
}

/** Reads a record's work requests, refusing any length that reaches past it. */
class Reader {
  off = 0;
  private readonly v: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.off >= this.bytes.length;
  }

  private need(n: number): number {
    if (this.off + n > this.bytes.length) throw new RangeError(`a post record ends inside a work request (at ${this.off} of ${this.bytes.length}, ${n} more wanted)`);
    const at = this.off;
    this.off += n;
    return at;
  }

  u32(): number {
    return this.v.getUint32(this.need(4), true);
  }

  f64(): number {
    return this.v.getFloat64(this.need(8), true);
  }

  u64(): bigint {
    return this.v.getBigUint64(this.need(8), true);
  }

  slice(n: number): Uint8Array {
    const at = this.need(pad8(n));
    return this.bytes.slice(at, at + n);
  }

  sges(n: number): Sge[] {
    if (n > MAX_SGES) throw new RangeError(`a work request with ${n} SGEs`);
    const out: Sge[] = [];
    for (let i = 0; i < n; i++) out.push({ addr: this.f64(), length: this.f64(), lkey: this.f64() });
    return out;
  }
}

export function decodeSendWrs(bytes: Uint8Array): SendWr[] {
  const r = new Reader(bytes);
  const out: SendWr[] = [];
  while (!r.done) {
    const mask = r.u32();
    const sges = r.u32();
    const wr: SendWr = { wrId: r.u64(), opcode: r.f64(), flags: r.f64(), sgList: [] };
    wr.sgList = r.sges(sges);
    OPTIONAL.forEach((k, i) => {
      if (mask & (1 << i)) wr[k] = r.f64();
    });
    BIG.forEach((k, i) => {
      if (mask & (1 << (OPTIONAL.length + i))) wr[k] = r.u64();
    });
    if (mask & INLINE_BIT) {
      const len = r.u32();
      r.u32();
      wr.inline = r.slice(len);
    }
    out.push(wr);
  }
  return out;
}

export function decodeRecvWrs(bytes: Uint8Array): RecvWr[] {
  const r = new Reader(bytes);
  const out: RecvWr[] = [];
  while (!r.done) {
    const sges = r.u32();
    r.u32();
    out.push({ wrId: r.u64(), sgList: r.sges(sges) });
  }
  return out;
}
