// First-fit allocator for the device arena (control path only: queue blocks, MR page tables,
// dirty log, packet buffers). Free blocks are kept sorted and coalesced.
import { type Fail, array, int, record, string as str } from '../util/plain.js';
import { MemoryError, MemoryErrorCode } from './errors.js';

interface FreeBlock {
  off: number;
  bytes: number;
}

/** Plain data: an allocator's range and its blocks, [offset, bytes] pairs in offset order. */
export interface ArenaState {
  base: number;
  bytes: number;
  what: string;
  free: [number, number][];
  used: [number, number][];
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

  saveState(): ArenaState {
    return {
      base: this.base,
      bytes: this.bytes,
      what: this.what,
      free: this.free.map((b) => [b.off, b.bytes]),
      used: [...this.used].sort((a, b) => a[0] - b[0]),
    };
  }

  /**
   * An allocator in the saved state. Refuses blocks outside the range, of no size, or
   * overlapping one another: a bad state would otherwise hand out the same bytes twice.
   */
  static fromState(state: unknown): Arena {
    const fail: Fail = (message) => {
      throw new MemoryError(MemoryErrorCode.BadState, `arena state: ${message}`);
    };
    const s = record(state, 'arena', fail);
    const base = int(s.base, 0, Number.MAX_SAFE_INTEGER, 'base', fail);
    const bytes = int(s.bytes, 0, Number.MAX_SAFE_INTEGER - base, 'bytes', fail);
    const blocks = (name: string): FreeBlock[] =>
      array(s[name], name, fail).map((pair, i) => {
        const p = array(pair, `${name}[${i}]`, fail, 2);
        const off = int(p[0], base, base + bytes, `${name}[${i}] offset`, fail);
        return { off, bytes: int(p[1], 1, base + bytes - off, `${name}[${i}] size`, fail) };
      });
    const free = blocks('free');
    const used = blocks('used');
    const all = [...free, ...used].sort((a, b) => a.off - b.off);
    for (let i = 1; i < all.length; i++) {
      if (all[i - 1].off + all[i - 1].bytes > all[i].off) fail(`blocks at ${all[i - 1].off} and ${all[i].off} overlap`);
    }
    for (let i = 1; i < free.length; i++) if (free[i - 1].off >= free[i].off) fail('free blocks are not in offset order');
    const arena = new Arena(base, bytes, str(s.what, 'what', fail));
    arena.free.splice(0, arena.free.length, ...free);
    for (const b of used) arena.used.set(b.off, b.bytes);
    return arena;
  }

  /** Bytes currently allocated. */
  usedBytes(): number {
    let sum = 0;
    for (const bytes of this.used.values()) sum += bytes;
    return sum;
  }
}
