// Work requests as bytes, the form in which posts cross from the device's thread to a QP shard in
// a worker, through the shard's post ring (sharded-verbs.ts, shard-worker.ts). Written with the
// state layer's FieldWriter and read back with its bounds-checked FieldReader (src/state):
// numbers travel as f64 (exact for every JS number) and 64-bit values as u64. A work request is
//   u32 fields present | u32 SGEs | u64 wrId | f64 opcode | f64 flags | SGEs (f64 addr, length,
//   lkey) | then each present field in the order of OPTIONAL: f64, u64 for the bigints, and the
//   inline bytes (u32 length, then the bytes)
// and a receive work request is u32 SGEs | u64 wrId | SGEs.
// A record cut short is refused (RangeError) rather than read past: the ring is trusted, but a
// bug should fail loudly, not quietly.
import { FieldReader, type FieldWriter, StateError } from '../../state/index.js';
import type { RecvWr, SendWr, Sge } from '../verbs.js';

/** A post ring record's kind (the ring's port field; its ip field is the QPN). */
export const POST_SEND = 0;
export const POST_RECV = 1;

const OPTIONAL = ['immData', 'invalidateRkey', 'remoteAddr', 'rkey', 'ah', 'remoteQpn', 'remoteQkey'] as const;
const BIG = ['compareAdd', 'swap'] as const;
const INLINE_BIT = 1 << 9;
/** Most SGEs one decoded work request may have (above any device's maxSge). */
const MAX_SGES = 1024;
/** Most inline bytes one decoded work request may carry (above any device's maxInlineBytes). */
const MAX_INLINE = 65536;

function putSges(w: FieldWriter, sges: readonly Sge[]): void {
  for (const s of sges) w.f64(s.addr).f64(s.length).f64(s.lkey);
}

export function encodeSendWr(w: FieldWriter, wr: SendWr): void {
  let mask = 0;
  OPTIONAL.forEach((k, i) => {
    if (wr[k] !== undefined) mask |= 1 << i;
  });
  BIG.forEach((k, i) => {
    if (wr[k] !== undefined) mask |= 1 << (OPTIONAL.length + i);
  });
  if (wr.inline !== undefined) mask |= INLINE_BIT;
  w.u32(mask).u32(wr.sgList.length).u64(BigInt.asUintN(64, wr.wrId)).f64(wr.opcode).f64(wr.flags);
  putSges(w, wr.sgList);
  for (const k of OPTIONAL) if (wr[k] !== undefined) w.f64(wr[k]);
  for (const k of BIG) if (wr[k] !== undefined) w.u64(BigInt.asUintN(64, wr[k]));
  if (wr.inline !== undefined) w.bytes(wr.inline);
}

export function encodeRecvWr(w: FieldWriter, wr: RecvWr): void {
  w.u32(wr.sgList.length).u64(BigInt.asUintN(64, wr.wrId));
  putSges(w, wr.sgList);
}

function sges(r: FieldReader, n: number): Sge[] {
  if (n > MAX_SGES) throw new RangeError(`a work request with ${n} SGEs`);
  const out: Sge[] = [];
  for (let i = 0; i < n; i++) out.push({ addr: r.f64('SGE address'), length: r.f64('SGE length'), lkey: r.f64('SGE lkey') });
  return out;
}

/** Every work request of a record, read by `one`; a record cut short is a RangeError. */
function readAll<T>(bytes: Uint8Array, one: (r: FieldReader) => T): T[] {
  const r = new FieldReader(bytes, 0, bytes.length, 'post record');
  const out: T[] = [];
  try {
    while (r.remaining > 0) out.push(one(r));
  } catch (err) {
    if (err instanceof StateError) throw new RangeError(`a post record ends inside a work request: ${err.message}`);
    throw err;
  }
  return out;
}

export function decodeSendWrs(bytes: Uint8Array): SendWr[] {
  return readAll(bytes, (r) => {
    const mask = r.u32('fields');
    const n = r.u32('SGEs');
    const wr: SendWr = { wrId: r.u64('wrId'), opcode: r.f64('opcode'), flags: r.f64('flags'), sgList: [] };
    wr.sgList = sges(r, n);
    OPTIONAL.forEach((k, i) => {
      if (mask & (1 << i)) wr[k] = r.f64(k);
    });
    BIG.forEach((k, i) => {
      if (mask & (1 << (OPTIONAL.length + i))) wr[k] = r.u64(k);
    });
    if (mask & INLINE_BIT) wr.inline = r.bytes('inline', MAX_INLINE);
    return wr;
  });
}

export function decodeRecvWrs(bytes: Uint8Array): RecvWr[] {
  return readAll(bytes, (r) => {
    const n = r.u32('SGEs');
    return { wrId: r.u64('wrId'), sgList: sges(r, n) };
  });
}
