// DirtyLog (R4): which 4 KiB guest-physical pages were written since the last harvest, as a
// bitmap in the vhost-user log format (bit n % 8 of byte n / 8 is page n) in a shared
// WebAssembly.Memory, so any thread may mark it. Writers (the device, the provider, the simulated
// guest) reach it through the memory they write (src/memory/write-log.ts) and test `enabled`
// before marking: with logging off the data path pays one boolean test. A pre-copy round calls
// harvest(): the Wasm kernel (or its twin) exchanges non-empty words with 0, so a bit set while
// it scans is taken now or in the next round, never lost.
//
// Layout (all in one memory, placed by create()):
//   bitmap   coverBytes / 4096 bits, rounded up to whole 64-byte lines (8-aligned for atomics)
//   cursor   one u32: the harvest kernel's resume point, then two u32 flags (logging on, and
//            overflowed), so every instance over the same placement, in any thread, shares them
//   out      outCap u32 page numbers: the kernel's output, drained chunk by chunk
import type { Arena } from '../memory/arena.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import type { WriteLog } from '../memory/write-log.js';
import type { KernelExports } from '../wasm/loader.js';
import { statusMessage } from '../wasm/status.js';
import type { KernelEngine } from '../virtio/queue.js';
import { DIRTY_MAX_BITMAP_BYTES, DIRTY_PAGE_BYTES, type DirtyKernels, dirtyKernels } from './dirty-kernels.js';

/** Where a log lives in its memory (plain data). */
export interface DirtyLogPlacement {
  readonly bitmapOff: number;
  readonly bitmapBytes: number;
  readonly cursorOff: number;
  readonly outOff: number;
  readonly outCap: number;
}

export interface DirtyLogOptions {
  /** Guest-physical bytes covered, from 0; default (forDevice) the end of the highest region. */
  coverBytes?: number;
  /** Which harvest/mark kernels run: the Wasm module (default) or the TypeScript twin. */
  engine?: KernelEngine;
  /** Page numbers the harvest kernel emits per call (its output buffer). Default 16384. */
  outCap?: number;
  /** Wasm exports already instantiated on the memory (saves an instance). */
  kernels?: KernelExports;
}

const DEFAULT_OUT_CAP = 16384;
/** Ranges of up to this many 32-bit bitmap words are marked inline; longer ones by the kernel. */
const INLINE_MARK_WORDS = 2;

export class DirtyLog implements WriteLog {
  /** Bytes per tracked page (vhost-user VHOST_LOG_PAGE). */
  readonly pageBytes = DIRTY_PAGE_BYTES;
  /** Guest-physical bytes the bitmap covers, from GPA 0. */
  readonly coverBytes: number;
  /** mark() calls while enabled. */
  marks = 0;
  /** harvest() calls, and the pages they returned in all. */
  harvests = 0;
  pagesHarvested = 0;
  private readonly words: Int32Array;
  private readonly u32: Uint32Array;
  private readonly kernels: DirtyKernels;
  private released = false;

  constructor(
    readonly memory: WebAssembly.Memory,
    readonly placement: DirtyLogPlacement,
    readonly engine: KernelEngine = 'wasm',
    kernels?: KernelExports,
    private readonly arena?: Arena,
  ) {
    const p = placement;
    if (p.bitmapOff % 8 !== 0 || p.bitmapBytes % 8 !== 0 || p.bitmapBytes <= 0 || p.bitmapBytes > DIRTY_MAX_BITMAP_BYTES) {
      throw new RangeError(`dirty bitmap at ${p.bitmapOff}+${p.bitmapBytes} must be 8-byte aligned, a multiple of 8 bytes, at most 512 MiB`);
    }
    if (p.cursorOff % 4 !== 0 || p.outOff % 4 !== 0 || !(p.outCap >= 1)) throw new RangeError('dirty log cursor and output must be 4-byte aligned, output non-empty');
    this.coverBytes = p.bitmapBytes * 8 * DIRTY_PAGE_BYTES;
    this.words = new Int32Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
    this.kernels = dirtyKernels(engine, memory, kernels);
    this.onWord = (p.cursorOff >>> 2) + 1;
    this.overflowWord = (p.cursorOff >>> 2) + 2;
  }

  /** Word indexes of the shared flags, beside the cursor. */
  private readonly onWord: number;
  private readonly overflowWord: number;

  /**
   * The log another instance (in this or another thread) placed in `memory`: it shares that log's
   * bitmap and its on and overflow flags, so writes this thread makes are logged while the
   * creator's log is started. dispose() on it gives nothing back.
   */
  static attach(memory: WebAssembly.Memory, placement: DirtyLogPlacement, engine: KernelEngine = 'wasm'): DirtyLog {
    const p = placement;
    const inside = (off: number, len: number) => Number.isSafeInteger(off) && off >= 0 && off + len <= memory.buffer.byteLength;
    if (!inside(p.bitmapOff, p.bitmapBytes) || !inside(p.cursorOff, 64) || !inside(p.outOff, 4 * p.outCap)) {
      throw new RangeError('the dirty log placement reaches outside its memory');
    }
    return new DirtyLog(memory, placement, engine);
  }

  /**
   * A write reached past coverBytes (a region plugged above the covered range) or named no
   * address: its pages could not be logged, so a migration must resend everything.
   */
  get overflowed(): boolean {
    return Atomics.load(this.words, this.overflowWord) !== 0;
  }

  set overflowed(v: boolean) {
    Atomics.store(this.words, this.overflowWord, v ? 1 : 0);
  }

  /** A log covering guest-physical [0, coverBytes), its buffers taken from `arena` in `memory`. */
  static create(memory: WebAssembly.Memory, arena: Arena, coverBytes: number, options: DirtyLogOptions = {}): DirtyLog {
    if (!Number.isSafeInteger(coverBytes) || coverBytes <= 0) throw new RangeError(`dirty log must cover a positive number of bytes, got ${coverBytes}`);
    const pages = Math.ceil(coverBytes / DIRTY_PAGE_BYTES);
    // Whole 64-byte lines: the kernel's widest empty-skip step, and no false sharing at the end.
    const bitmapBytes = Math.ceil(pages / 512) * 64;
    const outCap = options.outCap ?? DEFAULT_OUT_CAP;
    if (!Number.isInteger(outCap) || outCap < 1) throw new RangeError(`outCap must be a positive integer, got ${outCap}`);
    const bitmapOff = arena.alloc(bitmapBytes, 64);
    let outOff = -1;
    try {
      outOff = arena.alloc(64 + outCap * 4, 64);
    } catch (err) {
      arena.release(bitmapOff);
      throw err;
    }
    new Uint8Array(memory.buffer, bitmapOff, bitmapBytes).fill(0);
    const placement = { bitmapOff, bitmapBytes, cursorOff: outOff, outOff: outOff + 64, outCap };
    const log = new DirtyLog(memory, placement, options.engine, options.kernels, arena);
    // The arena may hand out bytes another log used: start with the flags down.
    log.stop();
    log.overflowed = false;
    return log;
  }

  /** A log for a device memory, in its arena, covering its regions (or options.coverBytes). */
  static forDevice(dm: DeviceMemory, options: DirtyLogOptions = {}): DirtyLog {
    const top = dm.guest.regions.list().reduce((end, r) => Math.max(end, r.gpa + r.size), 0);
    return DirtyLog.create(dm.memory, dm.arena, options.coverBytes ?? Math.max(top, DIRTY_PAGE_BYTES), options);
  }

  /** Whether writes are logged now. Sequentially consistent: a writer that reads it false wrote before start() returned. */
  get enabled(): boolean {
    return Atomics.load(this.words, this.onWord) !== 0;
  }

  /** Pages the bitmap covers. */
  get pages(): number {
    return this.placement.bitmapBytes * 8;
  }

  /**
   * Start logging with an empty bitmap: what was written before is the first pre-copy round's
   * business (it copies everything), so old bits would only be copied twice.
   */
  start(): void {
    this.clear();
    Atomics.store(this.words, this.onWord, 1);
  }

  /** Stop logging; bits already set stay until harvested or cleared. */
  stop(): void {
    Atomics.store(this.words, this.onWord, 0);
  }

  /** Forget every dirty bit and the overflow flag. */
  clear(): void {
    const { bitmapOff, bitmapBytes } = this.placement;
    new Uint8Array(this.memory.buffer, bitmapOff, bitmapBytes).fill(0);
    this.overflowed = false;
  }

  /** Guest-physical [gpa, gpa+lenBytes) was written; nothing happens while logging is off. */
  mark(gpa: number, lenBytes: number): void {
    if (Atomics.load(this.words, this.onWord) === 0) return;
    this.marks++;
    const end = gpa + lenBytes;
    if (gpa >= 0 && lenBytes > 0 && end <= this.coverBytes) {
      // Short ranges (the common case: a CQE, a ring entry, a packet's payload) are marked here,
      // setting exactly the bits the kernel would; a call into Wasm costs more than the work.
      const first = (gpa / DIRTY_PAGE_BYTES) >>> 0;
      const last = ((end - 1) / DIRTY_PAGE_BYTES) >>> 0;
      const fw = first >>> 5;
      const lw = last >>> 5;
      if (lw - fw < INLINE_MARK_WORDS) {
        const base = this.placement.bitmapOff >>> 2;
        const head = -1 << (first & 31);
        const tail = -1 >>> (31 - (last & 31));
        if (fw === lw) {
          Atomics.or(this.words, base + fw, head & tail);
        } else {
          Atomics.or(this.words, base + fw, head);
          Atomics.or(this.words, base + lw, tail);
        }
        return;
      }
    }
    this.markSlow(gpa, lenBytes);
  }

  private markSlow(gpa: number, lenBytes: number): void {
    // Past the covered range (ST_OUT_OF_RANGE) or not an address at all (ST_OVERFLOW): the write
    // cannot be logged, so the log can no longer vouch for clean pages. Never throw on the data path.
    if (this.kernels.dirtyMark(this.placement.bitmapOff, this.placement.bitmapBytes, gpa, lenBytes) < 0) this.overflowed = true;
  }

  /** Whether page `page` is dirty now (tests, logs; does not clear it). */
  isDirty(page: number): boolean {
    if (!(page >= 0 && page < this.pages)) return false;
    return (Atomics.load(this.words, (this.placement.bitmapOff >>> 2) + (page >>> 5)) & (1 << (page & 31))) !== 0;
  }

  /**
   * Take the dirty pages in chunks: `visit` gets each chunk of page numbers (ascending; a view
   * valid only during the call). Returns the pages taken. Works whether logging is on or off.
   */
  harvestChunks(visit: (pages: Uint32Array) => void): number {
    const p = this.placement;
    this.u32[p.cursorOff >>> 2] = 0;
    let total = 0;
    for (;;) {
      const n = this.kernels.dirtyHarvest(p.bitmapOff, p.bitmapBytes, p.cursorOff, p.outOff, p.outCap);
      if (n < 0) throw new RangeError(`dirty log harvest failed: ${statusMessage(n)}`);
      if (n > 0) visit(this.u32.subarray(p.outOff >>> 2, (p.outOff >>> 2) + n));
      total += n;
      if (this.u32[p.cursorOff >>> 2] >= p.bitmapBytes) break;
    }
    this.harvests++;
    this.pagesHarvested += total;
    return total;
  }

  /** Every dirty page number, ascending; their bits are cleared. */
  harvest(): Uint32Array {
    const chunks: Uint32Array[] = [];
    const total = this.harvestChunks((pages) => chunks.push(pages.slice()));
    if (chunks.length === 1) return chunks[0];
    const out = new Uint32Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** Give the buffers back to the arena they came from (create()/forDevice()). */
  dispose(): void {
    if (this.arena !== undefined) this.stop();
    if (this.released || this.arena === undefined) return;
    this.released = true;
    this.arena.release(this.placement.bitmapOff);
    this.arena.release(this.placement.cursorOff);
  }
}
