// Bounds-checked reading of message bodies (little-endian). Bodies are written with the state
// layer's FieldWriter (src/state/writer.ts); these reads mirror its fields: u64 as u53, bytes as
// blob, str as text. A body too short for what its type needs is SHORT_FRAME; leftover bytes or
// bad values are MALFORMED.
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
