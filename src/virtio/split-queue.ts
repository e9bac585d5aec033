// SplitQueue: the device side of one split virtqueue (virtio 1.2 2.7) over the split ring
// kernels, Wasm or the TypeScript twin. It is built only from a validated plain-data state
// (fromState) or attached in another thread to a queue block some thread already set up
// (attach). Its queue block, chain records and used-element buffer live in the device arena.
// What the kernels write into guest memory (used entries and idx, used flags, avail_event) is
// marked in the device's dirty log (R4).
import type { DeviceMemory } from '../memory/device-memory.js';
import { gpa, type Gpa } from '../memory/gpa.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { WriteLog } from '../memory/write-log.js';
import { instantiateKernels, type KernelExports } from '../wasm/loader.js';
import { ST_BAD_RING, ST_NO_SPACE, ST_OUT_OF_RANGE } from '../wasm/status.js';
import { CHAIN_HEADER_BYTES, DescriptorChain, SEGMENT_BYTES } from './chain.js';
import { VirtioError } from './errors.js';
import type { DeviceQueue, KernelEngine } from './queue.js';
import {
  MAX_SPLIT_QUEUE_SIZE, SPLIT_RING_ALIGN, SQ_AVAIL_GPA, SQ_AVAIL_OFF, SQ_BLOCK_BYTES, SQ_DESC_GPA, SQ_DESC_OFF,
  SQ_FEATURES, SQ_FEATURE_EVENT_IDX, SQ_FEATURE_INDIRECT, SQ_NEXT_AVAIL, SQ_NEXT_USED,
  SQ_REGION_TABLE_OFF, SQ_SIZE, SQ_USED_GPA, SQ_USED_OFF, USED_ELEM_BYTES, splitRingBytes,
  wasmSplitKernels, type SplitKernels,
} from './split-block.js';
import { splitTwin } from './split-twin.js';

/** Plain-data snapshot of a split queue (what migration carries); untrusted until fromState. */
export interface SplitQueueState {
  size: number;
  descGpa: number;
  availGpa: number;
  usedGpa: number;
  /** Next available ring slot the device will pop (16-bit). */
  nextAvail: number;
  /** Used idx the device last published (16-bit). */
  nextUsed: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirectDesc: boolean;
}

/** Where a queue's device-private buffers are: plain data a worker can attach to. */
export interface SplitQueuePlacement {
  blockOff: number;
  recordOff: number;
  recordBytes: number;
  usedBufOff: number;
}

const kernelCache = new WeakMap<WebAssembly.Memory, { wasm?: SplitKernels; ts?: SplitKernels }>();

function kernelsFor(memory: WebAssembly.Memory, engine: KernelEngine, exports?: KernelExports): SplitKernels {
  if (engine === 'wasm' && exports !== undefined) return wasmSplitKernels(exports);
  let entry = kernelCache.get(memory);
  if (entry === undefined) kernelCache.set(memory, (entry = {}));
  if (engine === 'wasm') return (entry.wasm ??= wasmSplitKernels(instantiateKernels(memory)));
  return (entry.ts ??= splitTwin(memory));
}

/** Record buffer size: any single chain (at most `size` segments) or `size` one-segment chains. */
function recordBytesFor(size: number): number {
  return (CHAIN_HEADER_BYTES + SEGMENT_BYTES) * size + CHAIN_HEADER_BYTES;
}

export class SplitQueue implements DeviceQueue {
  readonly format = 'split' as const;
  readonly size: number;
  private brokenStatus = 0;
  private pendingUsed = 0;
  private readonly view: DataView;

  private constructor(
    private readonly guest: GuestMemory,
    private readonly where: SplitQueuePlacement,
    private readonly kernels: SplitKernels,
    readonly name: string,
    /** Set when this object allocated the arena blocks and must release them. */
    private owner: DeviceMemory | undefined,
    /** Holds the dirty log the ring writes are marked in (read at each write). */
    private readonly logHost: { readonly dirtyLog: WriteLog },
  ) {
    this.view = guest.view;
    this.size = this.view.getUint16(where.blockOff + SQ_SIZE, true);
  }

  /**
   * Build a queue from an untrusted state: the size must be a power of two <= 32768, each ring
   * aligned as 2.7 requires and wholly inside one guest region, and the indices consistent.
   * `kernels` are the Wasm exports to use (a thread's instance); by default one is made.
   */
  static fromState(dm: DeviceMemory, state: SplitQueueState, engine: KernelEngine, kernels?: KernelExports, name = 'split'): SplitQueue {
    const bad = (status = ST_BAD_RING): never => {
      throw new VirtioError(status, name);
    };
    const { size } = state;
    if (!Number.isInteger(size) || size < 1 || size > MAX_SPLIT_QUEUE_SIZE || (size & (size - 1)) !== 0) bad();
    const u16 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;
    if (!u16(state.nextAvail) || !u16(state.nextUsed)) bad();
    if (((state.nextAvail - state.nextUsed) & 0xffff) > size) bad();
    if (typeof state.eventIdx !== 'boolean' || typeof state.indirectDesc !== 'boolean') bad();
    const bytes = splitRingBytes(size);
    const ring = (address: number, len: number, align: number): number => {
      if (!Number.isSafeInteger(address) || address < 0 || address % align !== 0) bad();
      const off = dm.guest.tryTranslate(address, len);
      if (off < 0) bad(ST_OUT_OF_RANGE);
      // Atomic accesses trap when misaligned: check the offset, not only the address.
      if (off % align !== 0) bad();
      return off;
    };
    const descOff = ring(state.descGpa, bytes.desc, SPLIT_RING_ALIGN.desc);
    const availOff = ring(state.availGpa, bytes.avail, SPLIT_RING_ALIGN.avail);
    const usedOff = ring(state.usedGpa, bytes.used, SPLIT_RING_ALIGN.used);

    const recordBytes = recordBytesFor(size);
    const blockOff = dm.arena.alloc(SQ_BLOCK_BYTES, 64);
    let recordOff = -1;
    let usedBufOff = -1;
    try {
      recordOff = dm.arena.alloc(recordBytes, 64);
      usedBufOff = dm.arena.alloc(USED_ELEM_BYTES * size, 64);
    } catch (err) {
      dm.arena.release(blockOff);
      if (recordOff >= 0) dm.arena.release(recordOff);
      throw err;
    }
    const v = dm.guest.view;
    dm.guest.bytes.fill(0, blockOff, blockOff + SQ_BLOCK_BYTES);
    v.setUint16(blockOff + SQ_SIZE, size, true);
    v.setUint16(blockOff + SQ_FEATURES, (state.eventIdx ? SQ_FEATURE_EVENT_IDX : 0) | (state.indirectDesc ? SQ_FEATURE_INDIRECT : 0), true);
    v.setUint32(blockOff + SQ_DESC_OFF, descOff, true);
    v.setUint32(blockOff + SQ_AVAIL_OFF, availOff, true);
    v.setUint32(blockOff + SQ_USED_OFF, usedOff, true);
    v.setUint32(blockOff + SQ_REGION_TABLE_OFF, dm.layout.regionTableOff, true);
    v.setUint16(blockOff + SQ_NEXT_AVAIL, state.nextAvail, true);
    v.setUint16(blockOff + SQ_NEXT_USED, state.nextUsed, true);
    // SQ_SIGNALLED_USED stays invalid: after a restore the first push always notifies.
    writeU64(v, blockOff + SQ_DESC_GPA, state.descGpa);
    writeU64(v, blockOff + SQ_AVAIL_GPA, state.availGpa);
    writeU64(v, blockOff + SQ_USED_GPA, state.usedGpa);
    const where = { blockOff, recordOff, recordBytes, usedBufOff };
    return new SplitQueue(dm.guest, where, kernelsFor(dm.memory, engine, kernels), name, dm, dm);
  }

  /**
   * Attach to a queue another thread set up with fromState (same memory, its placement()).
   * The block is device-private and trusted; only one thread may run a queue at a time. Ring
   * writes are marked in `guest.log` (give the device thread's GuestMemory the device's log).
   */
  static attach(guest: GuestMemory, placement: SplitQueuePlacement, engine: KernelEngine, kernels?: KernelExports, name = 'split'): SplitQueue {
    return new SplitQueue(guest, { ...placement }, kernelsFor(guest.memory, engine, kernels), name, undefined, { dirtyLog: guest.log });
  }

  get broken(): boolean {
    return this.brokenStatus !== 0;
  }

  /** Kernel status that broke the queue, or 0. */
  get brokenBy(): number {
    return this.brokenStatus;
  }

  placement(): SplitQueuePlacement {
    return { ...this.where };
  }

  /** Plain data to migrate or inspect. Chains popped but not yet used count as in flight. */
  state(): SplitQueueState {
    const v = this.view;
    const q = this.where.blockOff;
    const features = v.getUint16(q + SQ_FEATURES, true);
    return {
      size: this.size,
      descGpa: readU64(v, q + SQ_DESC_GPA),
      availGpa: readU64(v, q + SQ_AVAIL_GPA),
      usedGpa: readU64(v, q + SQ_USED_GPA),
      nextAvail: v.getUint16(q + SQ_NEXT_AVAIL, true),
      nextUsed: v.getUint16(q + SQ_NEXT_USED, true),
      eventIdx: (features & SQ_FEATURE_EVENT_IDX) !== 0,
      indirectDesc: (features & SQ_FEATURE_INDIRECT) !== 0,
    };
  }

  /** Ring addresses as Gpas (for logs and the dirty log of used-ring writes). */
  get usedGpa(): Gpa {
    return gpa(readU64(this.view, this.where.blockOff + SQ_USED_GPA));
  }

  pop(max = this.size): DescriptorChain[] {
    this.usable();
    const r = this.kernels.splitPop(this.where.blockOff, this.where.recordOff, this.where.recordBytes, max);
    if (r < 0) this.fail(r);
    const chains: DescriptorChain[] = [];
    let off = this.where.recordOff;
    for (let i = 0; i < r; i++) {
      const chain = new DescriptorChain(this.view, off);
      chains.push(chain);
      off += chain.recordBytes;
    }
    return chains;
  }

  addUsed(chain: DescriptorChain, writtenBytes: number): void {
    this.usable();
    if (this.pendingUsed >= this.size) throw new VirtioError(ST_NO_SPACE, this.name);
    if (!Number.isInteger(writtenBytes) || writtenBytes < 0 || writtenBytes > chain.writeBytes) {
      throw new RangeError(`${this.name}: used length ${writtenBytes} is not within the chain's ${chain.writeBytes} writable bytes`);
    }
    this.pushUsed(chain.id, writtenBytes);
  }

  /** Append one used element to the buffer flush() publishes. */
  private pushUsed(id: number, len: number): void {
    const e = this.where.usedBufOff + this.pendingUsed * USED_ELEM_BYTES;
    this.view.setUint32(e, id, true);
    this.view.setUint32(e + 4, len, true);
    this.pendingUsed++;
  }

  /**
   * Used elements added since the last flush, as [id, length] pairs: what a durable backend
   * commits with the device state, since the state's nextUsed counts only what was published.
   */
  pendingUsedEntries(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.pendingUsed; i++) {
      const e = this.where.usedBufOff + i * USED_ELEM_BYTES;
      out.push([this.view.getUint32(e, true), this.view.getUint32(e + 4, true)]);
    }
    return out;
  }

  /**
   * Put committed used elements back (pendingUsedEntries of the device this one replaces), to be
   * published by the next flush. Checked: an id outside the ring or more than a ring's worth is a
   * VirtioError.
   */
  restorePendingUsed(entries: readonly (readonly [number, number])[]): void {
    this.usable();
    if (this.pendingUsed + entries.length > this.size) throw new VirtioError(ST_NO_SPACE, `${this.name}: ${entries.length} used elements do not fit`);
    for (const [id, len] of entries) {
      if (!Number.isInteger(id) || id < 0 || id >= this.size || !Number.isInteger(len) || len < 0 || len > 0xffffffff) {
        throw new VirtioError(ST_OUT_OF_RANGE, `${this.name}: used element (${id}, ${len}) is not in the ring`);
      }
    }
    for (const [id, len] of entries) this.pushUsed(id, len);
  }

  flush(): boolean {
    this.usable();
    if (this.pendingUsed === 0) return false;
    const n = this.pendingUsed;
    const from = this.view.getUint16(this.where.blockOff + SQ_NEXT_USED, true);
    const r = this.kernels.splitPushUsed(this.where.blockOff, this.where.usedBufOff, n);
    this.pendingUsed = 0;
    if (r < 0) this.fail(r);
    const log = this.logHost.dirtyLog;
    if (log.enabled) this.logUsed(log, from, n);
    return r === 1;
  }

  /** Mark what splitPushUsed wrote: n used elements from slot `from` (wrapping), and used idx. */
  private logUsed(log: WriteLog, from: number, n: number): void {
    const used = readU64(this.view, this.where.blockOff + SQ_USED_GPA);
    const start = from & (this.size - 1);
    const run = Math.min(n, this.size - start);
    log.mark(used + 2, 2);
    log.mark(used + 4 + start * USED_ELEM_BYTES, run * USED_ELEM_BYTES);
    if (n > run) log.mark(used + 4, (n - run) * USED_ELEM_BYTES);
  }

  /** Mark the word the notify kernels store: avail_event with EVENT_IDX, else used flags (2.7.10). */
  private logNotifyWord(): void {
    const log = this.logHost.dirtyLog;
    if (!log.enabled) return;
    const used = readU64(this.view, this.where.blockOff + SQ_USED_GPA);
    const eventIdx = (this.view.getUint16(this.where.blockOff + SQ_FEATURES, true) & SQ_FEATURE_EVENT_IDX) !== 0;
    log.mark(eventIdx ? used + 4 + USED_ELEM_BYTES * this.size : used, 2);
  }

  enableNotification(): boolean {
    this.usable();
    const r = this.kernels.splitEnableNotify(this.where.blockOff);
    this.logNotifyWord();
    return r === 1;
  }

  disableNotification(): void {
    this.usable();
    this.kernels.splitDisableNotify(this.where.blockOff);
    this.logNotifyWord();
  }

  /** Release the arena blocks (only the thread that made the queue owns them). */
  dispose(): void {
    if (this.owner !== undefined) {
      this.owner.arena.release(this.where.blockOff);
      this.owner.arena.release(this.where.recordOff);
      this.owner.arena.release(this.where.usedBufOff);
      this.owner = undefined;
    }
    if (this.brokenStatus === 0) this.brokenStatus = ST_BAD_RING;
  }

  private usable(): void {
    if (this.brokenStatus !== 0) throw new VirtioError(this.brokenStatus, this.name);
  }

  private fail(status: number): never {
    this.brokenStatus = status;
    throw new VirtioError(status, this.name);
  }
}

function readU64(v: DataView, off: number): number {
  return v.getUint32(off, true) + v.getUint32(off + 4, true) * 2 ** 32;
}

function writeU64(v: DataView, off: number, value: number): void {
  v.setUint32(off, value % 2 ** 32, true);
  v.setUint32(off + 4, Math.floor(value / 2 ** 32), true);
}
