// Writing a state buffer: records of typed, little-endian fields behind the header. The writer
// checks every value against its field's width and throws RangeError on a value that does not
// fit — a saver bug, never silently truncated. Record layout (docs/state-format.md, "Records"):
//
//    0  u16 type    4  u32 body bytes
//    2  u16 flags   8  body
import { STATE_HEADER_BYTES, type StateKind, writeHeader } from './header.js';

export const RECORD_HEADER_BYTES = 8;
/** Record flag: a reader that does not know the type must refuse the buffer, not skip it. */
export const RECORD_CRITICAL = 1;

const U64_END = 1n << 64n;

/**
 * Fields of one record body. A StateWriter's records all go into one growing buffer (one
 * FieldWriter for the whole state): a state of many small records (a QP each) costs no
 * allocation per record, which is what the switchover's save takes its time with.
 */
export class FieldWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Start over, keeping the buffer (a StateWriter's scratch, reused from one state to the next). */
  reset(): void {
    this.len = 0;
  }

  get length(): number {
    return this.len;
  }

  private room(n: number): number {
    if (this.len + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  /** Overwrite a u32 already written at `at` (a record's length, once its body is written). */
  patchU32(at: number, v: number): void {
    this.uint(v, 32);
    if (at < 0 || at + 4 > this.len) throw new RangeError(`patch at ${at} is outside the ${this.len} bytes written`);
    this.view.setUint32(at, v, true);
  }

  private uint(v: number, bits: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new RangeError(`state field value ${v} is not a u${bits}`);
  }

  u8(v: number): this {
    this.uint(v, 8);
    const at = this.room(1);
    this.view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    this.uint(v, 16);
    const at = this.room(2);
    this.view.setUint16(at, v, true);
    return this;
  }
  u32(v: number): this {
    this.uint(v, 32);
    const at = this.room(4);
    this.view.setUint32(at, v, true);
    return this;
  }
  /** A u64 from a safe integer or a bigint. */
  u64(v: number | bigint): this {
    const at = this.room(8);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) {
        this.len -= 8;
        throw new RangeError(`state field value ${v} is not a u64 below 2^53`);
      }
      // Two u32 halves: the same bytes as setBigUint64, without a BigInt per field.
      this.view.setUint32(at, v % 2 ** 32, true);
      this.view.setUint32(at + 4, Math.floor(v / 2 ** 32), true);
      return this;
    }
    if (v < 0n || v >= U64_END) {
      this.len -= 8;
      throw new RangeError(`state field value ${v} is not a u64`);
    }
    this.view.setBigUint64(at, v, true);
    return this;
  }
  /** An IEEE 754 double (timestamps). */
  f64(v: number): this {
    const at = this.room(8);
    this.view.setFloat64(at, v, true);
    return this;
  }
  /** A signed 32-bit value (-1 sentinels). */
  i32(v: number): this {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new RangeError(`state field value ${v} is not an i32`);
    const at = this.room(4);
    this.view.setInt32(at, v, true);
    return this;
  }
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }
  /** u32 byte count, then the bytes. */
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** Bytes whose length the reader knows (no count). */
  raw(b: Uint8Array): this {
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** u16 byte count, then UTF-8. */
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.u16(b.length);
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** u32 element count, then each element. */
  list<T>(items: Iterable<T>, each: (w: this, item: T) => void): this {
    const all = Array.isArray(items) ? (items as readonly T[]) : [...items];
    this.u32(all.length);
    for (let i = 0; i < all.length; i++) each(this, all[i]);
    return this;
  }

  /** The body written so far. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** Encoded parts of states, by the object they were encoded from (cachedPart). */
const parts = new WeakMap<object, Uint8Array>();

/**
 * Write what `write` writes for `key`, encoding it only the first time: later states that hold
 * the same object copy its bytes. For large parts that rarely change (an MR's page list) and are
 * replaced, never modified, when they do: the key must not change once encoded.
 */
export function cachedPart(w: FieldWriter, key: object, write: (w: FieldWriter) => void): void {
  let bytes = parts.get(key);
  if (bytes === undefined) {
    const part = new FieldWriter(256);
    write(part);
    bytes = part.finish().slice();
    parts.set(key, bytes);
  }
  w.raw(bytes);
}

/**
 * Scratch buffers of finished writers. A state is written into one and copied out whole, so the
 * next state (a durable backend commits one at every pass, src/backend) reuses it instead of
 * allocating and zeroing 64 KiB; a writer being used (a provider state nested in a device
 * state is written while the device's writer is open) takes another.
 */
const scratch: FieldWriter[] = [];
const MAX_SCRATCH = 4;

/** A whole state buffer: records in the order written, then the header with length and checksum. */
export class StateWriter {
  /** Header space, then every record (header and body) as written. */
  private readonly out: FieldWriter;
  private count = 0;

  constructor(readonly kind: StateKind) {
    this.out = scratch.pop() ?? new FieldWriter(64 * 1024);
    this.out.reset();
    this.out.raw(new Uint8Array(STATE_HEADER_BYTES));
  }

  record(type: number, write: (w: FieldWriter) => void, flags = 0): this {
    if (!Number.isInteger(type) || type < 1 || type > 0xffff) throw new RangeError(`record type ${type}`);
    const head = this.out.length;
    this.out.u16(type).u16(flags).u32(0);
    write(this.out);
    const bodyBytes = this.out.length - head - RECORD_HEADER_BYTES;
    if (this.out.length > 0xffffffff) throw new RangeError('state exceeds 4 GiB');
    this.out.patchU32(head + 4, bodyBytes);
    this.count++;
    return this;
  }

  finish(): Uint8Array {
    const out = this.out.finish().slice();
    if (scratch.length < MAX_SCRATCH && !scratch.includes(this.out)) scratch.push(this.out);
    writeHeader(out, this.kind, this.count);
    return out;
  }
}
