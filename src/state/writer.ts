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

/** Fields of one record body. */
export class FieldWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;

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
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`state field value ${v} is not a u64 below 2^53`);
      v = BigInt(v);
    }
    if (v < 0n || v >= U64_END) throw new RangeError(`state field value ${v} is not a u64`);
    const at = this.room(8);
    this.view.setBigUint64(at, v, true);
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
    const all = [...items];
    this.u32(all.length);
    for (const item of all) each(this, item);
    return this;
  }

  /** The body written so far. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/** A whole state buffer: records in the order written, then the header with length and checksum. */
export class StateWriter {
  private readonly parts: Uint8Array[] = [];
  private bytes = STATE_HEADER_BYTES;
  private count = 0;

  constructor(readonly kind: StateKind) {}

  record(type: number, write: (w: FieldWriter) => void, flags = 0): this {
    const w = new FieldWriter();
    write(w);
    const body = w.finish();
    const head = new Uint8Array(RECORD_HEADER_BYTES);
    const v = new DataView(head.buffer);
    if (!Number.isInteger(type) || type < 1 || type > 0xffff) throw new RangeError(`record type ${type}`);
    v.setUint16(0, type, true);
    v.setUint16(2, flags, true);
    v.setUint32(4, body.length, true);
    this.parts.push(head, body.slice());
    this.bytes += RECORD_HEADER_BYTES + body.length;
    if (this.bytes > 0xffffffff) throw new RangeError('state exceeds 4 GiB');
    this.count++;
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.bytes);
    let at = STATE_HEADER_BYTES;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    writeHeader(out, this.kind, this.count);
    return out;
  }
}
