// The device side of one packed virtqueue (virtio 1.2 section 2.8) over its kernels, Wasm or the
// TypeScript twin. Its state lives in a queue block in the device arena (layout in
// assembly/packed-layout.ts), so another thread can attach to the same queue (attach()) and the
// kernels stay pure functions over shared memory. Built only through a validating fromState().
// What the kernels write into guest memory (used descriptors, the device event suppression area)
// is marked in the device's dirty log (R4).
import * as L from '../../assembly/packed-layout.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import { type Gpa, gpaHex } from '../memory/gpa.js';
import { NO_WRITE_LOG, type WriteLog } from '../memory/write-log.js';
import { ST_BAD_RING, ST_NO_SPACE, ST_OUT_OF_RANGE } from '../wasm/status.js';
import { DescriptorChain, chainRecordBytes } from './chain.js';
import { VirtioError } from './errors.js';
import { type PackedKernels, packedKernels } from './packed-kernels.js';
import type { DeviceQueue, KernelEngine } from './queue.js';

/** Plain, untrusted snapshot of a packed queue's device state (e.g. from a migration stream). */
export interface PackedQueueState {
  /** Queue size, 1..32768. */
  size: number;
  /** Guest-physical address of the descriptor ring (16-aligned, 16 * size bytes). */
  descGpa: number;
  /** Driver event suppression area, the "Driver Area" (4-aligned, 4 bytes). */
  driverEventGpa: number;
  /** Device event suppression area, the "Device Area" (4-aligned, 4 bytes). */
  deviceEventGpa: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
  nextAvail: number;
  availWrap: number;
  nextUsed: number;
  usedWrap: number;
  /** Ring slots popped but not yet used. */
  inflightSlots: number;
  /** Used position at the last notification check, and whether there was one. */
  signalSlot: number;
  signalWrap: number;
  signalValid: boolean;
}

/** The state of a freshly negotiated queue: both wrap counters 1, nothing in flight (2.8.1). */
export function initialPackedQueueState(
  size: number,
  rings: { descGpa: number; driverEventGpa: number; deviceEventGpa: number },
  features: { eventIdx: boolean; indirect: boolean },
): PackedQueueState {
  return { size, ...rings, ...features, nextAvail: 0, availWrap: 1, nextUsed: 0, usedWrap: 1, inflightSlots: 0, signalSlot: 0, signalWrap: 1, signalValid: false };
}

/** A used entry added but not published: buffer id, bytes written, ring slots its chain took. */
export type PackedUsedEntry = [id: number, len: number, slots: number];

/** Where a queue lives in shared memory: enough for another thread to attach to it. */
export interface PackedQueueHandle {
  name: string;
  blockOff: number;
  recordOff: number;
  recordBytes: number;
  usedOff: number;
  descGpa: number;
  driverEventGpa: number;
  deviceEventGpa: number;
}

export class PackedQueue implements DeviceQueue {
  readonly format = 'packed';
  private brokenStatus = 0;
  private pending = 0;
  /** Ring slots the pending used entries span (their chains' descriptor counts). */
  private pendingSlots = 0;
  private disposed = false;
  private readonly view: DataView;
  private readonly u16: Uint16Array;

  private constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly h: PackedQueueHandle,
    readonly size: number,
    private readonly kernels: PackedKernels,
    private readonly owner: DeviceMemory | undefined,
    /** Holds the dirty log the ring writes are marked in (read at each write). */
    private readonly logHost: { readonly dirtyLog: WriteLog },
  ) {
    this.view = new DataView(memory.buffer);
    this.u16 = new Uint16Array(memory.buffer);
  }

  /**
   * Validate `state` against the guest's memory and build the queue: allocates its block, record
   * buffer and used buffer in the device arena. Throws VirtioError (BAD_RING, OUT_OF_RANGE).
   */
  static fromState(dm: DeviceMemory, state: PackedQueueState, engine: KernelEngine, kernels?: PackedKernels, name = 'packed queue'): PackedQueue {
    const bad = (why: string, status = ST_BAD_RING): never => {
      throw new VirtioError(status, `${name} (${why})`);
    };
    const s = state;
    const isInt = (v: unknown, max: number): boolean => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
    if (!isInt(s.size, L.PQ_MAX_SIZE) || s.size < 1) bad(`size ${s.size} not in 1..${L.PQ_MAX_SIZE}`);
    for (const [field, value] of [['availWrap', s.availWrap], ['usedWrap', s.usedWrap], ['signalWrap', s.signalWrap]] as const) {
      if (value !== 0 && value !== 1) bad(`${field} ${value} is not 0 or 1`);
    }
    for (const [field, value] of [['nextAvail', s.nextAvail], ['nextUsed', s.nextUsed], ['signalSlot', s.signalSlot]] as const) {
      if (!isInt(value, s.size - 1)) bad(`${field} ${value} not below size ${s.size}`);
    }
    if (!isInt(s.inflightSlots, s.size)) bad(`inflightSlots ${s.inflightSlots} exceeds size ${s.size}`);
    const cycle = 2 * s.size;
    const pos = (slot: number, wrap: number) => (wrap ? slot : slot + s.size);
    if ((pos(s.nextUsed, s.usedWrap) + s.inflightSlots) % cycle !== pos(s.nextAvail, s.availWrap)) {
      bad(`used position + inflightSlots does not reach the avail position`);
    }
    if (typeof s.eventIdx !== 'boolean' || typeof s.indirect !== 'boolean' || typeof s.signalValid !== 'boolean') bad('feature flags must be booleans');
    const place = (field: string, address: number, bytes: number, align: number): number => {
      if (!isInt(address, Number.MAX_SAFE_INTEGER)) bad(`${field} ${address} is not an address`);
      if (address % align !== 0) bad(`${field} ${gpaHex(address as Gpa)} is not ${align}-byte aligned`);
      const off = dm.guest.tryTranslate(address, bytes);
      if (off < 0) bad(`${field} ${gpaHex(address as Gpa)}+${bytes} is not inside one guest region`, ST_OUT_OF_RANGE);
      return off;
    };
    const descOff = place('descGpa', s.descGpa, s.size * L.PDESC_BYTES, 16);
    const driverEventOff = place('driverEventGpa', s.driverEventGpa, L.EVENT_BYTES, 4);
    const deviceEventOff = place('deviceEventGpa', s.deviceEventGpa, L.EVENT_BYTES, 4);

    // A record buffer holds the longest chain (size segments) and a batch of short ones.
    const recordBytes = chainRecordBytes(s.size) + 16 * s.size;
    const taken: number[] = [];
    try {
      for (const bytes of [L.PQ_BLOCK_BYTES, recordBytes, s.size * L.PUSED_BYTES]) taken.push(dm.arena.alloc(bytes, 64));
    } catch (err) {
      for (const off of taken) dm.arena.release(off);
      throw err;
    }
    const [blockOff, recordOff, usedOff] = taken;
    const v = new DataView(dm.memory.buffer);
    new Uint8Array(dm.memory.buffer, blockOff, L.PQ_BLOCK_BYTES).fill(0);
    v.setUint32(blockOff + L.PQ_SIZE, s.size, true);
    v.setUint32(blockOff + L.PQ_FEATURES, (s.eventIdx ? L.PQ_FEATURE_EVENT_IDX : 0) | (s.indirect ? L.PQ_FEATURE_INDIRECT : 0), true);
    v.setUint32(blockOff + L.PQ_DESC_OFF, descOff, true);
    v.setUint32(blockOff + L.PQ_DRIVER_EVENT_OFF, driverEventOff, true);
    v.setUint32(blockOff + L.PQ_DEVICE_EVENT_OFF, deviceEventOff, true);
    v.setUint32(blockOff + L.PQ_REGION_TABLE_OFF, dm.layout.regionTableOff, true);
    v.setUint16(blockOff + L.PQ_NEXT_AVAIL, s.nextAvail, true);
    v.setUint16(blockOff + L.PQ_AVAIL_WRAP, s.availWrap, true);
    v.setUint16(blockOff + L.PQ_NEXT_USED, s.nextUsed, true);
    v.setUint16(blockOff + L.PQ_USED_WRAP, s.usedWrap, true);
    v.setUint32(blockOff + L.PQ_INFLIGHT, s.inflightSlots, true);
    v.setUint16(blockOff + L.PQ_SIGNAL_SLOT, s.signalSlot, true);
    v.setUint16(blockOff + L.PQ_SIGNAL_WRAP, s.signalWrap, true);
    v.setUint32(blockOff + L.PQ_SIGNAL_VALID, s.signalValid ? 1 : 0, true);
    const handle: PackedQueueHandle = {
      name,
      blockOff,
      recordOff,
      recordBytes,
      usedOff,
      descGpa: s.descGpa,
      driverEventGpa: s.driverEventGpa,
      deviceEventGpa: s.deviceEventGpa,
    };
    return new PackedQueue(dm.memory, handle, s.size, kernels ?? packedKernels(engine, dm.memory), dm, dm);
  }

  /**
   * Attach to a queue another thread built (its handle()), e.g. in a datapath worker. Only one
   * thread may drive a queue at a time; the owner alone disposes of it. Ring writes are marked in
   * `log` (the device's dirty log).
   */
  static attach(memory: WebAssembly.Memory, handle: PackedQueueHandle, engine: KernelEngine, module?: WebAssembly.Module, log: WriteLog = NO_WRITE_LOG): PackedQueue {
    const size = new DataView(memory.buffer).getUint32(handle.blockOff + L.PQ_SIZE, true);
    return new PackedQueue(memory, { ...handle }, size, packedKernels(engine, memory, module), undefined, { dirtyLog: log });
  }

  handle(): PackedQueueHandle {
    return { ...this.h };
  }

  /** Offset of the queue block in the shared memory (tests and fuzzers compare it byte for byte). */
  get blockOff(): number {
    return this.h.blockOff;
  }

  get broken(): boolean {
    return this.brokenStatus !== 0;
  }

  /** The published state; entries added with addUsed() but not flushed are not part of it. */
  state(): PackedQueueState {
    const v = this.view;
    const q = this.h.blockOff;
    const features = v.getUint32(q + L.PQ_FEATURES, true);
    return {
      size: this.size,
      descGpa: this.h.descGpa,
      driverEventGpa: this.h.driverEventGpa,
      deviceEventGpa: this.h.deviceEventGpa,
      eventIdx: (features & L.PQ_FEATURE_EVENT_IDX) !== 0,
      indirect: (features & L.PQ_FEATURE_INDIRECT) !== 0,
      nextAvail: v.getUint16(q + L.PQ_NEXT_AVAIL, true),
      availWrap: v.getUint16(q + L.PQ_AVAIL_WRAP, true),
      nextUsed: v.getUint16(q + L.PQ_NEXT_USED, true),
      usedWrap: v.getUint16(q + L.PQ_USED_WRAP, true),
      inflightSlots: v.getUint32(q + L.PQ_INFLIGHT, true),
      signalSlot: v.getUint16(q + L.PQ_SIGNAL_SLOT, true),
      signalWrap: v.getUint16(q + L.PQ_SIGNAL_WRAP, true),
      signalValid: v.getUint32(q + L.PQ_SIGNAL_VALID, true) !== 0,
    };
  }

  private check(): void {
    if (this.disposed) throw new Error(`${this.h.name}: used after dispose()`);
    if (this.brokenStatus !== 0) throw new VirtioError(this.brokenStatus, this.h.name);
  }

  private fail(status: number): never {
    this.brokenStatus = status;
    throw new VirtioError(status, this.h.name);
  }

  pop(max = this.size): DescriptorChain[] {
    this.check();
    const n = this.kernels.packedPop(this.h.blockOff, this.h.recordOff, this.h.recordBytes, max);
    if (n < 0) this.fail(n);
    const chains: DescriptorChain[] = [];
    let off = this.h.recordOff;
    for (let i = 0; i < n; i++) {
      const chain = new DescriptorChain(this.view, off);
      chains.push(chain);
      off += chain.recordBytes;
    }
    return chains;
  }

  addUsed(chain: DescriptorChain, writtenBytes: number): void {
    this.check();
    if (!Number.isSafeInteger(writtenBytes) || writtenBytes < 0 || writtenBytes > chain.writeBytes) {
      throw new RangeError(`${this.h.name}: ${writtenBytes} bytes written into a chain with ${chain.writeBytes} writable`);
    }
    if (this.pending >= this.size) throw new RangeError(`${this.h.name}: more than ${this.size} used entries pending; flush() first`);
    const u = this.h.usedOff + this.pending * L.PUSED_BYTES;
    this.view.setUint16(u + L.PUSED_ID, chain.id, true);
    this.view.setUint16(u + L.PUSED_DESC_COUNT, chain.descCount, true);
    this.view.setUint32(u + L.PUSED_LEN, writtenBytes, true);
    this.pending++;
    this.pendingSlots += chain.descCount;
  }

  /**
   * Used entries added since the last flush, as [id, length, ring slots] triples: what a durable
   * backend commits with the device state, since the state's nextUsed counts only what was
   * published.
   */
  pendingUsedEntries(): PackedUsedEntry[] {
    const out: PackedUsedEntry[] = [];
    for (let i = 0; i < this.pending; i++) {
      const u = this.h.usedOff + i * L.PUSED_BYTES;
      out.push([this.view.getUint16(u + L.PUSED_ID, true), this.view.getUint32(u + L.PUSED_LEN, true), this.view.getUint16(u + L.PUSED_DESC_COUNT, true)]);
    }
    return out;
  }

  /**
   * Put committed used entries back (pendingUsedEntries of the device this one replaces, built
   * from the same committed state). A packed ring's slots go back to the driver as soon as it has
   * seen a used descriptor, so writing one again could overwrite a new available descriptor. An
   * entry is therefore taken as published when its slot holds a used descriptor of this lap (its
   * USED flag equals the queue's used wrap counter; before publication the slot holds the
   * driver's available descriptor, whose USED flag is the inverse): the queue moves past the
   * longest such prefix without writing, and the rest waits for the next flush. (A flush writes
   * its first descriptor's flags last, so the driver has seen nothing past an unpublished entry,
   * and writing those again puts the same bytes back. Entries given to a queue that already holds
   * pending ones follow those, so none of them can have been published.) Returns how many were
   * found published.
   * Checked before anything changes: an id outside the ring, a slot count of 0, more slots than
   * are in flight or more entries than the ring holds is a VirtioError.
   */
  restorePendingUsed(entries: readonly (readonly [number, number, number])[]): number {
    this.check();
    const q = this.h.blockOff;
    const v = this.view;
    const refuse = (why: string): never => {
      throw new VirtioError(ST_OUT_OF_RANGE, `${this.h.name}: ${why}`);
    };
    if (this.pending + entries.length > this.size) throw new VirtioError(ST_NO_SPACE, `${this.h.name}: ${entries.length} used entries do not fit`);
    let slots = this.pendingSlots;
    const inflight = v.getUint32(q + L.PQ_INFLIGHT, true);
    for (const [id, len, count] of entries) {
      if (!Number.isInteger(id) || id < 0 || id >= this.size || !Number.isInteger(len) || len < 0 || len > 0xffffffff) refuse(`used entry (${id}, ${len}) is not in the ring`);
      if (!Number.isInteger(count) || count < 1 || count > this.size) refuse(`used entry ${id} spans ${count} slots`);
      slots += count;
    }
    if (slots > inflight) refuse(`used entries span ${slots} slots; ${inflight} are in flight`);
    let published = 0;
    if (this.pending === 0) {
      let slot = v.getUint16(q + L.PQ_NEXT_USED, true);
      let wrap = v.getUint16(q + L.PQ_USED_WRAP, true);
      let taken = 0;
      const ring = v.getUint32(q + L.PQ_DESC_OFF, true);
      for (const [, , count] of entries) {
        const flags = Atomics.load(this.u16, (ring + slot * L.PDESC_BYTES + L.PDESC_FLAGS) >>> 1);
        if (((flags & L.VIRTQ_DESC_F_USED) !== 0 ? 1 : 0) !== wrap) break;
        published++;
        taken += count;
        slot += count;
        if (slot >= this.size) {
          slot -= this.size;
          wrap ^= 1;
        }
      }
      v.setUint16(q + L.PQ_NEXT_USED, slot, true);
      v.setUint16(q + L.PQ_USED_WRAP, wrap, true);
      v.setUint32(q + L.PQ_INFLIGHT, inflight - taken, true);
    }
    for (const [id, len, count] of entries.slice(published)) {
      const u = this.h.usedOff + this.pending * L.PUSED_BYTES;
      v.setUint16(u + L.PUSED_ID, id, true);
      v.setUint16(u + L.PUSED_DESC_COUNT, count, true);
      v.setUint32(u + L.PUSED_LEN, len, true);
      this.pending++;
      this.pendingSlots += count;
    }
    return published;
  }

  flush(): boolean {
    this.check();
    if (this.pending === 0) return false;
    const n = this.pending;
    const slots = this.pendingSlots;
    const from = this.view.getUint16(this.h.blockOff + L.PQ_NEXT_USED, true);
    this.pending = 0;
    this.pendingSlots = 0;
    const r = this.kernels.packedPushUsed(this.h.blockOff, this.h.usedOff, n);
    if (r < 0) this.fail(r);
    const log = this.logHost.dirtyLog;
    if (log.enabled) this.logUsed(log, from, slots);
    return r === 1;
  }

  /**
   * Mark the descriptor slots packedPushUsed wrote used descriptors into: the `slots` slots from
   * `from`, wrapping (it writes the first slot of each chain; the span covers them all).
   */
  private logUsed(log: WriteLog, from: number, slots: number): void {
    const span = Math.min(slots, this.size);
    const run = Math.min(span, this.size - from);
    log.mark(this.h.descGpa + from * L.PDESC_BYTES, run * L.PDESC_BYTES);
    if (span > run) log.mark(this.h.descGpa, (span - run) * L.PDESC_BYTES);
  }

  /** Mark the device event suppression word the notify kernels store (2.8.10). */
  private logDeviceEvent(): void {
    const log = this.logHost.dirtyLog;
    if (log.enabled) log.mark(this.h.deviceEventGpa, L.EVENT_BYTES);
  }

  enableNotification(): boolean {
    this.check();
    const r = this.kernels.packedEnableNotify(this.h.blockOff);
    this.logDeviceEvent();
    return r === 1;
  }

  disableNotification(): void {
    this.check();
    this.kernels.packedDisableNotify(this.h.blockOff);
    this.logDeviceEvent();
  }

  /** Free the queue's arena blocks (owner only; an attached queue just stops). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.owner !== undefined) {
      this.owner.arena.release(this.h.blockOff);
      this.owner.arena.release(this.h.recordOff);
      this.owner.arena.release(this.h.usedOff);
    }
  }
}
