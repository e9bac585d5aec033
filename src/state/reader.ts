// Reading a state buffer: the header and checksum (header.ts), then the records, each a bounds-
// checked FieldReader over its body. Nothing here trusts a length: every read is checked against
// the end of its record, and every element count against the bytes left, before anything is
// allocated. Unknown record types are skipped unless flagged critical (docs/state-format.md,
// "Compatibility"); trailing bytes after the fields a reader knows are a newer minor's additions.
import { StateError, StateErrorCode, badRecord } from './errors.js';
import { STATE_HEADER_BYTES, type StateHeader, type StateKind, readHeader } from './header.js';
import { RECORD_CRITICAL, RECORD_HEADER_BYTES } from './writer.js';

export interface StateRecord {
  readonly type: number;
  readonly flags: number;
  /** Offset of the record header in the buffer (for messages). */
  readonly offset: number;
  readonly body: FieldReader;
}

export class FieldReader {
  private pos: number;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, start: number, private readonly end: number, readonly where: string) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private take(n: number, name: string): number {
    if (n > this.end - this.pos) {
      throw new StateError(StateErrorCode.Truncated, `${this.where}: ${name} needs ${n} bytes, ${this.end - this.pos} left`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(name: string): number {
    return this.view.getUint8(this.take(1, name));
  }
  u16(name: string): number {
    return this.view.getUint16(this.take(2, name), true);
  }
  u32(name: string): number {
    return this.view.getUint32(this.take(4, name), true);
  }
  i32(name: string): number {
    return this.view.getInt32(this.take(4, name), true);
  }
  u64(name: string): bigint {
    return this.view.getBigUint64(this.take(8, name), true);
  }
  /** An IEEE 754 double (FieldWriter.f64). */
  f64(name: string): number {
    return this.view.getFloat64(this.take(8, name), true);
  }
  /** A u64 that must be exact as a number (below 2^53). */
  u64n(name: string): number {
    const at = this.take(8, name);
    // Two u32 halves: no BigInt per field (a saved QP has dozens of u64 fields).
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    if (hi > 0x1fffff) throw badRecord(`${this.where}: ${name} ${this.view.getBigUint64(at, true)} is not below 2^53`);
    return hi * 2 ** 32 + lo;
  }
  /** 0 or 1; anything else is malformed. */
  bool(name: string): boolean {
    const v = this.u8(name);
    if (v > 1) throw badRecord(`${this.where}: ${name} is ${v}, not 0 or 1`);
    return v === 1;
  }
  /** A value that must be in [min, max]. */
  range(name: string, v: number, min: number, max: number): number {
    if (v < min || v > max) throw badRecord(`${this.where}: ${name} ${v} is not in ${min}..${max}`);
    return v;
  }
  /** A value that must be one of an enum's numbers. */
  oneOf<T extends number>(name: string, v: number, allowed: readonly T[]): T {
    if (!allowed.includes(v as T)) throw badRecord(`${this.where}: ${name} ${v} is not one of ${allowed.join(', ')}`);
    return v as T;
  }
  /** A u32 byte count (at most `max`), then that many bytes (a copy). */
  bytes(name: string, max: number): Uint8Array {
    const n = this.u32(`${name} length`);
    if (n > max) throw badRecord(`${this.where}: ${name} of ${n} bytes exceeds ${max}`);
    const at = this.take(n, name);
    return this.copyOut(at, n);
  }
  /** Exactly `n` bytes (a copy). */
  raw(name: string, n: number): Uint8Array {
    return this.copyOut(this.take(n, name), n);
  }
  private copyOut(at: number, n: number): Uint8Array {
    return this.buf.slice(at, at + n);
  }
  str(name: string, max = 1024): string {
    const n = this.u16(`${name} length`);
    if (n > max) throw badRecord(`${this.where}: ${name} of ${n} bytes exceeds ${max}`);
    const at = this.take(n, name);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(at, at + n));
    } catch {
      throw badRecord(`${this.where}: ${name} is not UTF-8`);
    }
  }
  /**
   * A u32 element count, checked against `max` and against the bytes left (each element takes at
   * least `minElemBytes`), then the elements: no count can make the reader allocate or loop
   * beyond what the buffer holds.
   */
  list<T>(name: string, max: number, minElemBytes: number, each: (r: this, i: number) => T): T[] {
    const n = this.u32(`${name} count`);
    if (n > max) throw badRecord(`${this.where}: ${n} ${name} exceed ${max}`);
    if (n * minElemBytes > this.remaining) {
      throw new StateError(StateErrorCode.Truncated, `${this.where}: ${n} ${name} need at least ${n * minElemBytes} bytes, ${this.remaining} left`);
    }
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(this, i));
    return out;
  }
}

/** Check header and checksum, then split the records, each bounded by its own length. */
export function openState(buf: Uint8Array, kind: StateKind, names: ReadonlyMap<number, string> = new Map()): { header: StateHeader; records: StateRecord[] } {
  const header = readHeader(buf, kind);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: StateRecord[] = [];
  let at = STATE_HEADER_BYTES;
  while (at < buf.length) {
    if (buf.length - at < RECORD_HEADER_BYTES) throw new StateError(StateErrorCode.Truncated, `record header at ${at} is cut off`);
    const type = view.getUint16(at, true);
    const flags = view.getUint16(at + 2, true);
    const len = view.getUint32(at + 4, true);
    const start = at + RECORD_HEADER_BYTES;
    if (len > buf.length - start) throw new StateError(StateErrorCode.Truncated, `record at ${at} announces ${len} bytes, ${buf.length - start} left`);
    const name = names.get(type) ?? `record type 0x${type.toString(16)}`;
    records.push({ type, flags, offset: at, body: new FieldReader(buf, start, start + len, `${name} at ${at}`) });
    at = start + len;
  }
  if (records.length !== header.recordCount) {
    throw new StateError(StateErrorCode.BadLength, `header counts ${header.recordCount} records, the buffer holds ${records.length}`);
  }
  return { header, records };
}

/**
 * Hand each record to the decoder for its type. A type with no decoder is skipped (a newer
 * writer's addition) unless it is flagged critical; a type listed in `once` may appear at most
 * once.
 */
export function dispatch(records: readonly StateRecord[], decoders: ReadonlyMap<number, (r: FieldReader) => void>, once: ReadonlySet<number> = new Set()): void {
  const seen = new Set<number>();
  for (const rec of records) {
    const decode = decoders.get(rec.type);
    if (decode === undefined) {
      if ((rec.flags & RECORD_CRITICAL) !== 0) throw badRecord(`${rec.body.where}: unknown record type flagged critical`);
      continue;
    }
    if (once.has(rec.type) && seen.has(rec.type)) throw new StateError(StateErrorCode.Inconsistent, `${rec.body.where}: a second record of this type`);
    seen.add(rec.type);
    decode(rec.body);
  }
}
