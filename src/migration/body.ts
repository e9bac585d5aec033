// Bounds-checked reading and growing writing of message bodies (little-endian). A body that is
// too short for what its type needs is SHORT_FRAME; leftover bytes or bad values are MALFORMED.
import { MigrationError, MigrationErrorCode } from './errors.js';

export class BodyReader {
  private off = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array, private readonly what: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.off;
  }

  private need(n: number): number {
    if (n > this.remaining) {
      throw new MigrationError(MigrationErrorCode.ShortFrame, `${this.what}: needs ${n} more bytes at offset ${this.off}, has ${this.remaining}`);
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }
  u16(): number {
    return this.view.getUint16(this.need(2), true);
  }
  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }
  f64(): number {
    return this.view.getFloat64(this.need(8), true);
  }
  /** A u64 below 2^53. */
  u53(): number {
    const lo = this.u32();
    const hi = this.u32();
    if (hi >= 2 ** 21) this.fail(`u64 field ${hi} * 2^32 + ${lo} exceeds 2^53`);
    return hi * 2 ** 32 + lo;
  }
  /** `n` bytes, shared with the frame (no copy). */
  bytesOf(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.subarray(at, at + n);
  }
  /** A u32 length then that many bytes. */
  blob(): Uint8Array {
    return this.bytesOf(this.u32());
  }
  /** A u16 length then that many bytes of UTF-8. */
  text(): string {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.bytesOf(this.u16()));
  }

  /** The body must be used up exactly. */
  end(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} trailing bytes`);
  }

  fail(message: string): never {
    throw new MigrationError(MigrationErrorCode.Malformed, `${this.what}: ${message}`);
  }
}

export class BodyWriter {
  private buf = new Uint8Array(64);
  private view = new DataView(this.buf.buffer);
  private off = 0;

  private room(n: number): number {
    if (this.off + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.off + n));
      grown.set(this.buf.subarray(0, this.off));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.off;
    this.off += n;
    return at;
  }

  u8(v: number): this {
    const at = this.room(1);
    this.view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.room(2);
    this.view.setUint16(at, v, true);
    return this;
  }
  u32(v: number): this {
    const at = this.room(4);
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }
  f64(v: number): this {
    const at = this.room(8);
    this.view.setFloat64(at, v, true);
    return this;
  }
  u53(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${v} is not a u64 below 2^53`);
    return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32));
  }
  bytes(b: Uint8Array): this {
    // room() may replace the buffer: take the offset first.
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  blob(b: Uint8Array): this {
    return this.u32(b.length).bytes(b);
  }
  text(s: string): this {
    const b = new TextEncoder().encode(s);
    if (b.length > 0xffff) throw new RangeError('text longer than 65535 bytes');
    return this.u16(b.length).bytes(b);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.off);
  }
}
