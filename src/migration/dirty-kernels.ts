// The dirty-log kernels from either engine: the Wasm module (assembly/dirty-log.ts) or the
// TypeScript twin below. Same signatures, same shared memory, same results: the twin takes each
// 64-bit word as two 32-bit halves with Atomics.exchange, which clears and reports exactly the
// bits the Wasm kernel's one 64-bit exchange would (the format is a bitmap, so halves are as good
// as wholes for "no bit lost": each bit is taken by exactly one exchange).
import { ST_MISALIGNED, ST_OUT_OF_RANGE, ST_OVERFLOW } from '../wasm/status.js';
import { type KernelExports, instantiateKernels } from '../wasm/loader.js';
import type { KernelEngine } from '../virtio/queue.js';

/** Bytes per page the log tracks (vhost-user: VHOST_LOG_PAGE, 4 KiB). */
export const DIRTY_PAGE_BYTES = 4096;
/** Largest bitmap: 2^32 pages, whose numbers still fit a u32. */
export const DIRTY_MAX_BITMAP_BYTES = 2 ** 29;

export interface DirtyKernels {
  /**
   * Move dirty page numbers (u32, ascending) from the bitmap at `bitmap` into `out`, clearing
   * them, starting at the byte cursor stored at `cursorPtr` and updating it. Count or status.
   */
  dirtyHarvest(bitmap: number, bitmapBytes: number, cursorPtr: number, out: number, outCap: number): number;
  /** Mark [gpa, gpa+lenBytes): pages marked, or ST_OUT_OF_RANGE past the bitmap, ST_OVERFLOW. */
  dirtyMark(bitmap: number, bitmapBytes: number, gpa: number, lenBytes: number): number;
}

/** The Wasm exports narrowed to the dirty-log kernels. */
export function wasmDirtyKernels(exports: KernelExports): DirtyKernels {
  const fn = (name: string) => {
    const f = exports[name];
    if (typeof f !== 'function') throw new Error(`Wasm kernels lack ${name}: rebuild with "npm run build"`);
    return f as (...args: number[]) => number;
  };
  return { dirtyHarvest: fn('dirtyHarvest'), dirtyMark: fn('dirtyMark') };
}

/** Kernels of `engine` over `memory` (Wasm: a new instance unless `exports` are given). */
export function dirtyKernels(engine: KernelEngine, memory: WebAssembly.Memory, exports?: KernelExports): DirtyKernels {
  return engine === 'wasm' ? wasmDirtyKernels(exports ?? instantiateKernels(memory)) : new DirtyTwin(memory);
}

/** Lowest set bit's index of a non-zero 32-bit value. */
function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** The TypeScript twin of assembly/dirty-log.ts. */
export class DirtyTwin implements DirtyKernels {
  private readonly words: Int32Array;
  private readonly u32: Uint32Array;
  private readonly memBytes: number;

  constructor(memory: WebAssembly.Memory) {
    this.words = new Int32Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
    this.memBytes = memory.buffer.byteLength;
  }

  private span(ptr: number, bytes: number, align: number): number {
    if (ptr % align !== 0) return ST_MISALIGNED;
    if (ptr + bytes > this.memBytes) return ST_OUT_OF_RANGE;
    return 0;
  }

  private bitmapStatus(bitmap: number, bitmapBytes: number): number {
    if (bitmapBytes % 8 !== 0) return ST_MISALIGNED;
    if (bitmapBytes > DIRTY_MAX_BITMAP_BYTES) return ST_OVERFLOW;
    return this.span(bitmap, bitmapBytes, 8);
  }

  readonly dirtyHarvest = (bitmap: number, bitmapBytes: number, cursorPtr: number, out: number, outCap: number): number => {
    bitmap >>>= 0;
    bitmapBytes >>>= 0;
    cursorPtr >>>= 0;
    out >>>= 0;
    outCap >>>= 0;
    let st = this.bitmapStatus(bitmap, bitmapBytes);
    if (st === 0) st = this.span(cursorPtr, 4, 4);
    if (st === 0) st = this.span(out, outCap * 4, 4);
    if (st !== 0) return st;
    const w = this.words;
    const u = this.u32;
    let cursor = u[cursorPtr >>> 2];
    if (cursor % 8 !== 0) return ST_MISALIGNED;
    if (cursor > bitmapBytes) return ST_OUT_OF_RANGE;
    const outIdx = out >>> 2;
    let count = 0;
    while (cursor < bitmapBytes) {
      const i = (bitmap + cursor) >>> 2;
      // Plain reads to skip empty words, as the Wasm kernel's vector loads do.
      if ((w[i] | w[i + 1]) === 0) {
        cursor += 8;
        continue;
      }
      if (count === outCap) break;
      let lo = Atomics.exchange(w, i, 0);
      let hi = Atomics.exchange(w, i + 1, 0);
      const base = cursor * 8;
      while (lo !== 0 && count < outCap) {
        u[outIdx + count++] = base + ctz32(lo);
        lo &= lo - 1;
      }
      while (hi !== 0 && count < outCap) {
        u[outIdx + count++] = base + 32 + ctz32(hi);
        hi &= hi - 1;
      }
      if ((lo | hi) !== 0) {
        if (lo !== 0) Atomics.or(w, i, lo);
        if (hi !== 0) Atomics.or(w, i + 1, hi);
        break;
      }
      cursor += 8;
    }
    u[cursorPtr >>> 2] = cursor;
    return count;
  };

  readonly dirtyMark = (bitmap: number, bitmapBytes: number, gpa: number, lenBytes: number): number => {
    bitmap >>>= 0;
    bitmapBytes >>>= 0;
    const st = this.bitmapStatus(bitmap, bitmapBytes);
    if (st !== 0) return st;
    if (!(gpa >= 0) || !(lenBytes >= 0) || gpa > Number.MAX_SAFE_INTEGER || lenBytes > Number.MAX_SAFE_INTEGER) return ST_OVERFLOW;
    if (lenBytes < 1) return 0;
    // The kernel truncates both to integers; so does the twin.
    const start = Math.floor(gpa);
    const pages = bitmapBytes * 8;
    const first = Math.floor(start / DIRTY_PAGE_BYTES);
    let last = Math.floor((start + Math.floor(lenBytes) - 1) / DIRTY_PAGE_BYTES);
    if (first >= pages) return ST_OUT_OF_RANGE;
    let result = 0;
    if (last >= pages) {
      last = pages - 1;
      result = ST_OUT_OF_RANGE;
    }
    const base = bitmap >>> 2;
    const fw = Math.floor(first / 32);
    const lw = Math.floor(last / 32);
    const head = -1 << (first % 32);
    const tail = -1 >>> (31 - (last % 32));
    const w = this.words;
    if (fw === lw) {
      Atomics.or(w, base + fw, head & tail);
    } else {
      Atomics.or(w, base + fw, head);
      for (let i = fw + 1; i < lw; i++) Atomics.or(w, base + i, -1);
      Atomics.or(w, base + lw, tail);
    }
    if (result < 0) return result;
    return Math.min(last - first + 1, 0x7fffffff);
  };
}
