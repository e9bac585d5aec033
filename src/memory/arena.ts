// First-fit allocator for the device arena (control path only: queue blocks, MR page tables,
// dirty log, packet buffers). Free blocks are kept sorted and coalesced.
import { MemoryError, MemoryErrorCode } from './errors.js';

interface FreeBlock {
  off: number;
  bytes: number;
}

export class Arena {
  private readonly free: FreeBlock[];
  private readonly used = new Map<number, number>();

  constructor(readonly base: number, readonly bytes: number, readonly what = 'device arena') {
    this.free = [{ off: base, bytes }];
  }

  /** Allocate `bytes` aligned to `align` (a power of two); returns the offset in the memory. */
  alloc(bytes: number, align = 64): number {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new MemoryError(MemoryErrorCode.Overflow, `bad arena size ${bytes}`);
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i];
      const off = Math.ceil(block.off / align) * align;
      const pad = off - block.off;
      if (pad + bytes > block.bytes) continue;
      const tail = block.bytes - pad - bytes;
      const replacement: FreeBlock[] = [];
      if (pad > 0) replacement.push({ off: block.off, bytes: pad });
      if (tail > 0) replacement.push({ off: off + bytes, bytes: tail });
      this.free.splice(i, 1, ...replacement);
      this.used.set(off, bytes);
      return off;
    }
    throw new MemoryError(MemoryErrorCode.NoSpace, `${this.what} has no room for ${bytes} bytes`);
  }

  /** Return a block from alloc(). */
  release(off: number): void {
    const bytes = this.used.get(off);
    if (bytes === undefined) throw new MemoryError(MemoryErrorCode.NoSuchRegion, `no ${this.what} block at ${off}`);
    this.used.delete(off);
    let i = 0;
    while (i < this.free.length && this.free[i].off < off) i++;
    this.free.splice(i, 0, { off, bytes });
    // Coalesce with the neighbours.
    if (i + 1 < this.free.length && off + bytes === this.free[i + 1].off) {
      this.free[i].bytes += this.free[i + 1].bytes;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].off + this.free[i - 1].bytes === this.free[i].off) {
      this.free[i - 1].bytes += this.free[i].bytes;
      this.free.splice(i, 1);
    }
  }

  /** Bytes currently allocated. */
  usedBytes(): number {
    let sum = 0;
    for (const bytes of this.used.values()) sum += bytes;
    return sum;
  }
}
