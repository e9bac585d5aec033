// Descriptor chains as the pop kernels hand them over: a record in a buffer in the device's
// shared memory, already translated to memory offsets. DescriptorChain is a view over one record
// (no copy); ChainReader and ChainWriter walk its readable and writable parts.
//
// Chain record (little-endian), written by splitPop / packedPop and their twins:
//   0  u16 id          split: head descriptor index; packed: buffer id
//   2  u16 descCount   descriptors the chain used in the ring (packed: slots to skip)
//   4  u16 readSegs    device-readable segments, which come first
//   6  u16 writeSegs   device-writable segments, which follow
//   8  u32 readBytes   sum of readable lengths
//   12 u32 writeBytes  sum of writable lengths
//   16 segments[readSegs + writeSegs], 16 bytes each:
//        0 u32 offset (in the shared memory)  4 u32 len  8 u64 gpa
// Zero-length descriptors produce no segment.

import { copyBytes } from '../util/copy-bytes.js';
import type { WriteLog } from '../memory/write-log.js';

export const CHAIN_HEADER_BYTES = 16;
export const SEGMENT_BYTES = 16;

/** Write one segment at `at`: memory offset, length, and the GPA as its two 32-bit halves. */
export function writeSegment(view: DataView, at: number, offset: number, len: number, gpaLo: number, gpaHi: number): void {
  view.setUint32(at, offset, true);
  view.setUint32(at + 4, len, true);
  view.setUint32(at + 8, gpaLo, true);
  view.setUint32(at + 12, gpaHi, true);
}

/** Write a chain record's header at `at` (the TypeScript twins' side of the format above). */
export function writeChainHeader(
  view: DataView,
  at: number,
  id: number,
  descCount: number,
  readSegs: number,
  writeSegs: number,
  readBytes: number,
  writeBytes: number,
): void {
  view.setUint16(at, id, true);
  view.setUint16(at + 2, descCount, true);
  view.setUint16(at + 4, readSegs, true);
  view.setUint16(at + 6, writeSegs, true);
  view.setUint32(at + 8, readBytes, true);
  view.setUint32(at + 12, writeBytes, true);
}

/** Bytes a chain record of `segments` segments takes. */
export function chainRecordBytes(segments: number): number {
  return CHAIN_HEADER_BYTES + segments * SEGMENT_BYTES;
}

export class DescriptorChain {
  constructor(
    private readonly view: DataView,
    /** Offset of the record in the shared memory. */
    readonly recordOff: number,
  ) {}

  get id(): number {
    return this.view.getUint16(this.recordOff, true);
  }
  get descCount(): number {
    return this.view.getUint16(this.recordOff + 2, true);
  }
  get readSegments(): number {
    return this.view.getUint16(this.recordOff + 4, true);
  }
  get writeSegments(): number {
    return this.view.getUint16(this.recordOff + 6, true);
  }
  get readBytes(): number {
    return this.view.getUint32(this.recordOff + 8, true);
  }
  get writeBytes(): number {
    return this.view.getUint32(this.recordOff + 12, true);
  }
  /** Bytes the whole record takes; the next record follows it. */
  get recordBytes(): number {
    return chainRecordBytes(this.readSegments + this.writeSegments);
  }

  /** Segment `i`'s offset in memory (readable segments first). */
  segmentOffset(i: number): number {
    return this.view.getUint32(this.recordOff + CHAIN_HEADER_BYTES + i * SEGMENT_BYTES, true);
  }

  /** Segment `i`'s length in bytes. */
  segmentLength(i: number): number {
    return this.view.getUint32(this.recordOff + CHAIN_HEADER_BYTES + i * SEGMENT_BYTES + 4, true);
  }

  /** Segment `i` (readable ones first): its memory offset, length and guest-physical address. */
  segment(i: number): { offset: number; len: number; gpa: number } {
    const s = this.recordOff + CHAIN_HEADER_BYTES + i * SEGMENT_BYTES;
    return {
      offset: this.view.getUint32(s, true),
      len: this.view.getUint32(s + 4, true),
      gpa: this.view.getUint32(s + 8, true) + this.view.getUint32(s + 12, true) * 2 ** 32,
    };
  }

  reader(bytes: Uint8Array): ChainReader {
    return new ChainReader(this, bytes, 0, this.readSegments);
  }

  writer(bytes: Uint8Array): ChainWriter {
    return new ChainWriter(this, bytes, this.readSegments, this.readSegments + this.writeSegments);
  }
}

/** Sequential reads across a chain's readable segments. */
export class ChainReader {
  private seg: number;
  private pos = 0;
  private consumed = 0;

  constructor(private readonly chain: DescriptorChain, private readonly bytes: Uint8Array, first: number, private readonly end: number) {
    this.seg = first;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.chain.readBytes - this.consumed;
  }

  /** Copy up to `n` (default dst.length) bytes into the start of dst; returns how many were copied. */
  read(dst: Uint8Array, n = dst.length): number {
    const want = Math.min(n, dst.length);
    let done = 0;
    while (done < want && this.seg < this.end) {
      const offset = this.chain.segmentOffset(this.seg);
      const len = this.chain.segmentLength(this.seg);
      const k = Math.min(len - this.pos, want - done);
      copyBytes(this.bytes, offset + this.pos, dst, done, k);
      done += k;
      this.pos += k;
      if (this.pos === len) {
        this.seg++;
        this.pos = 0;
      }
    }
    this.consumed += done;
    return done;
  }

  /**
   * Copy exactly n bytes into the start of `dst` (at least n long), or return false, copying
   * nothing, if the chain has fewer left: a caller's scratch, reused from one WQE to the next.
   */
  readInto(dst: Uint8Array, n: number): boolean {
    if (n > this.remaining || n > dst.length) return false;
    this.read(dst, n);
    return true;
  }

  /** Read exactly n bytes, or return null if the chain has fewer left. */
  readExact(n: number): Uint8Array | null {
    if (n > this.remaining) return null;
    const out = new Uint8Array(n);
    this.read(out);
    return out;
  }
}

/** Sequential writes across a chain's writable segments. */
export class ChainWriter {
  private seg: number;
  private pos = 0;
  /** Bytes written so far: the used length to report. */
  written = 0;

  constructor(private readonly chain: DescriptorChain, private readonly bytes: Uint8Array, first: number, private readonly end: number) {
    this.seg = first;
  }

  get remaining(): number {
    return this.chain.writeBytes - this.written;
  }

  /**
   * Copy src into the writable segments; returns how many bytes fit. Each guest range written is
   * marked in `log` (the device's dirty log, R4) when it is on.
   */
  write(src: Uint8Array, log?: WriteLog): number {
    const logging = log !== undefined && log.enabled;
    let done = 0;
    while (done < src.length && this.seg < this.end) {
      const offset = this.chain.segmentOffset(this.seg);
      const len = this.chain.segmentLength(this.seg);
      const n = Math.min(len - this.pos, src.length - done);
      copyBytes(src, done, this.bytes, offset + this.pos, n);
      if (logging) (log as WriteLog).mark(this.chain.segment(this.seg).gpa + this.pos, n);
      done += n;
      this.pos += n;
      if (this.pos === len) {
        this.seg++;
        this.pos = 0;
      }
    }
    this.written += done;
    return done;
  }
}
