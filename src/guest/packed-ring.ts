// The guest driver side of a packed virtqueue (virtio 1.2 section 2.8): lays out the descriptor
// ring and the two event suppression areas in guest RAM, hands out buffer ids, makes chains
// available (direct or through an indirect table), decides when to kick, and collects used
// buffers. Tests, fuzzers, benchmarks and the demo all drive the device through this library,
// exactly as a guest would. It touches guest memory only through GuestMemory (each ring part is
// translated once, checked) and Atomics on the flags and event words. What it stores is marked
// in the GuestMemory's write log (the vCPU's dirty log, R4), as KVM would track it.
import * as L from '../../assembly/packed-layout.js';
import type { Arena } from '../memory/arena.js';
import { type Gpa, gpa } from '../memory/gpa.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { VirtioError } from '../virtio/errors.js';
import { type PackedQueueState, initialPackedQueueState } from '../virtio/packed-queue.js';
import { type Fail, bool, int, ints, record } from '../util/plain.js';
import { ST_BAD_ID } from '../wasm/status.js';

/** One guest buffer element: guest-physical address and length in bytes. */
export interface GuestBuffer {
  readonly gpa: number;
  readonly len: number;
}

export interface PackedDriverOptions {
  /** Queue size, 1..32768. */
  readonly size: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  readonly eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirect?: boolean;
}

/** A buffer the device has used. */
export interface UsedBuffer {
  readonly id: number;
  /** Bytes the device wrote (the used descriptor's len). */
  readonly len: number;
}

const NO_TABLE = -1;

/** Where a packed ring's three parts lie in guest memory. */
export interface PackedRingGpas {
  descGpa: number;
  driverEventGpa: number;
  deviceEventGpa: number;
}

/** Plain data: the driver's private state, which a real guest keeps in its own RAM. */
export interface PackedDriverState extends PackedRingGpas {
  size: number;
  eventIdx: boolean;
  indirect: boolean;
  nextAvail: number;
  availWrap: number;
  nextUsed: number;
  usedWrap: number;
  freeSlots: number;
  freeIds: number[];
  freeIdCount: number;
  slotsById: number[];
  tableById: number[];
  kickPos: number;
}

export class PackedDriver {
  readonly size: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly descGpa: Gpa;
  readonly driverEventGpa: Gpa;
  readonly deviceEventGpa: Gpa;
  private readonly dv: DataView;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly ringOff: number;
  private readonly driverEventIdx: number;
  private readonly deviceEventIdx: number;
  // Driver Ring Wrap Counter and the used side's counter both start at 1 (2.8.1).
  private nextAvail = 0;
  private availWrap = 1;
  private nextUsed = 0;
  private usedWrap = 1;
  private freeSlots: number;
  private readonly freeIds: Uint16Array;
  private freeIdCount: number;
  /** Ring slots each live buffer id took; 0 when the id is free. */
  private readonly slotsById: Uint16Array;
  private readonly tableById: Float64Array;
  /** Avail position at the last kick decision (2.8.10, DESC mode). */
  private kickPos = 0;

  /** A fresh ring from `ram`; or, with `rings`, a driver over rings already in guest memory (restore). */
  constructor(private readonly guest: GuestMemory, private readonly ram: Arena, options: PackedDriverOptions, rings?: PackedRingGpas) {
    const { size } = options;
    if (!Number.isInteger(size) || size < 1 || size > L.PQ_MAX_SIZE) throw new RangeError(`packed queue size ${size} not in 1..${L.PQ_MAX_SIZE}`);
    this.size = size;
    this.eventIdx = options.eventIdx ?? false;
    this.indirect = options.indirect ?? false;
    // Alignment per 2.8.11: descriptor ring 16, event suppression areas 4.
    const ringBytes = size * L.PDESC_BYTES;
    this.descGpa = gpa(rings?.descGpa ?? ram.alloc(ringBytes, 16));
    this.driverEventGpa = gpa(rings?.driverEventGpa ?? ram.alloc(L.EVENT_BYTES, 4));
    this.deviceEventGpa = gpa(rings?.deviceEventGpa ?? ram.alloc(L.EVENT_BYTES, 4));
    if (rings === undefined) {
      // "The descriptor ring is zero-initialized" (2.8.13); events start as ENABLE.
      guest.fill(this.descGpa, ringBytes, 0);
      guest.fill(this.driverEventGpa, L.EVENT_BYTES, 0);
      guest.fill(this.deviceEventGpa, L.EVENT_BYTES, 0);
    }
    const buffer = guest.memory.buffer;
    this.dv = new DataView(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.ringOff = guest.translate(this.descGpa, ringBytes);
    this.driverEventIdx = guest.translate(this.driverEventGpa, L.EVENT_BYTES) >>> 2;
    this.deviceEventIdx = guest.translate(this.deviceEventGpa, L.EVENT_BYTES) >>> 2;
    this.freeSlots = size;
    this.freeIds = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.freeIds[i] = size - 1 - i;
    this.freeIdCount = size;
    this.slotsById = new Uint16Array(size);
    this.tableById = new Float64Array(size).fill(NO_TABLE);
  }

  saveState(): PackedDriverState {
    return {
      size: this.size, eventIdx: this.eventIdx, indirect: this.indirect,
      descGpa: this.descGpa, driverEventGpa: this.driverEventGpa, deviceEventGpa: this.deviceEventGpa,
      nextAvail: this.nextAvail, availWrap: this.availWrap, nextUsed: this.nextUsed, usedWrap: this.usedWrap, freeSlots: this.freeSlots,
      freeIds: [...this.freeIds], freeIdCount: this.freeIdCount, slotsById: [...this.slotsById], tableById: [...this.tableById], kickPos: this.kickPos,
    };
  }

  /**
   * The driver in a saved state, over rings already in guest memory (nothing is allocated or
   * written). Throws RangeError naming the first field that is out of range or inconsistent.
   */
  static fromState(guest: GuestMemory, ram: Arena, state: unknown): PackedDriver {
    const fail: Fail = (message) => {
      throw new RangeError(`packed ring state: ${message}`);
    };
    const s = record(state, 'state', fail);
    const size = int(s.size, 1, L.PQ_MAX_SIZE, 'size', fail);
    const addr = (name: string) => int(s[name], 0, Number.MAX_SAFE_INTEGER, name, fail);
    const rings = { descGpa: addr('descGpa'), driverEventGpa: addr('driverEventGpa'), deviceEventGpa: addr('deviceEventGpa') };
    const freeIdCount = int(s.freeIdCount, 0, size, 'freeIdCount', fail);
    const freeIds = ints(s.freeIds, 0, size - 1, 'freeIds', fail, size);
    const slotsById = ints(s.slotsById, 0, size, 'slotsById', fail, size);
    const tableById = ints(s.tableById, NO_TABLE, Number.MAX_SAFE_INTEGER, 'tableById', fail, size);
    const freeSlots = int(s.freeSlots, 0, size, 'freeSlots', fail);
    const live = new Set(freeIds.slice(0, freeIdCount));
    if (live.size !== freeIdCount) fail('an id is free twice');
    for (let id = 0; id < size; id++) {
      if (live.has(id) !== (slotsById[id] === 0)) fail(`id ${id}: free and in flight disagree`);
      if (tableById[id] !== NO_TABLE && slotsById[id] !== 1) fail(`id ${id}: an indirect table on a buffer of ${slotsById[id]} slots`);
    }
    if (slotsById.reduce((a, b) => a + b, 0) !== size - freeSlots) fail('slots in flight do not match freeSlots');
    const d = new PackedDriver(guest, ram, { size, eventIdx: bool(s.eventIdx, 'eventIdx', fail), indirect: bool(s.indirect, 'indirect', fail) }, rings);
    d.nextAvail = int(s.nextAvail, 0, size - 1, 'nextAvail', fail);
    d.availWrap = int(s.availWrap, 0, 1, 'availWrap', fail);
    d.nextUsed = int(s.nextUsed, 0, size - 1, 'nextUsed', fail);
    d.usedWrap = int(s.usedWrap, 0, 1, 'usedWrap', fail);
    d.freeSlots = freeSlots;
    d.freeIds.set(freeIds);
    d.freeIdCount = freeIdCount;
    d.slotsById.set(slotsById);
    d.tableById.set(tableById);
    d.kickPos = int(s.kickPos, 0, 2 * size - 1, 'kickPos', fail);
    return d;
  }

  /** The device's starting state for this ring (what the transport tells the device). */
  deviceState(): PackedQueueState {
    return initialPackedQueueState(
      this.size,
      { descGpa: this.descGpa, driverEventGpa: this.driverEventGpa, deviceEventGpa: this.deviceEventGpa },
      { eventIdx: this.eventIdx, indirect: this.indirect },
    );
  }

  /** Ring slots not held by the device or by buffers not yet collected. */
  get freeSlotCount(): number {
    return this.freeSlots;
  }

  /** Buffers made available and not yet collected. */
  get inFlight(): number {
    return this.size - this.freeIdCount;
  }

  private pos(slot: number, wrap: number): number {
    return wrap ? slot : slot + this.size;
  }

  /**
   * Make a buffer of `readable` then `writable` elements available; returns its buffer id, or
   * null if the ring has no room (collect used buffers first). With `indirect`, the elements go
   * into an indirect table in guest RAM and the buffer takes one ring slot (2.8.7).
   */
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], indirect = false): number | null {
    const n = readable.length + writable.length;
    if (n === 0) throw new RangeError('a buffer has at least one element (2.8)');
    if (n > this.size) throw new RangeError(`a buffer of ${n} elements exceeds the queue size ${this.size} (2.8.18)`);
    if (indirect && !this.indirect) throw new RangeError('indirect descriptors need VIRTIO_F_INDIRECT_DESC (2.8.19)');
    for (let i = 0; i < n; i++) {
      const b = i < readable.length ? readable[i] : writable[i - readable.length];
      if (!Number.isSafeInteger(b.gpa) || b.gpa < 0 || !Number.isInteger(b.len) || b.len < 0 || b.len > 0xffffffff) {
        throw new RangeError(`bad guest buffer ${b.gpa}+${b.len}`);
      }
    }
    const slots = indirect ? 1 : n;
    if (slots > this.freeSlots || this.freeIdCount === 0) return null;
    const id = this.freeIds[--this.freeIdCount];
    if (indirect) {
      const tableBytes = n * L.PDESC_BYTES;
      const tableGpa = gpa(this.ram.alloc(tableBytes, 16));
      const t = this.guest.translate(tableGpa, tableBytes);
      for (let i = 0; i < n; i++) {
        const write = i >= readable.length;
        const b = write ? writable[i - readable.length] : readable[i];
        this.writeDesc(t + i * L.PDESC_BYTES, b.gpa, b.len, 0);
        this.dv.setUint16(t + i * L.PDESC_BYTES + L.PDESC_FLAGS, write ? L.VIRTQ_DESC_F_WRITE : 0, true);
      }
      this.guest.wrote(tableGpa, tableBytes);
      this.tableById[id] = tableGpa;
      this.publishIndirect(tableGpa, tableBytes, id);
    } else {
      this.publishChain(readable, writable, id);
    }
    this.slotsById[id] = slots;
    this.freeSlots -= slots;
    return id;
  }

  private writeDesc(off: number, address: number, len: number, id: number): void {
    this.dv.setUint32(off + L.PDESC_ADDR, address % 2 ** 32, true);
    this.dv.setUint32(off + L.PDESC_ADDR + 4, Math.floor(address / 2 ** 32), true);
    this.dv.setUint32(off + L.PDESC_LEN, len, true);
    this.dv.setUint16(off + L.PDESC_ID, id, true);
  }

  private availFlags(wrap: number): number {
    return wrap ? L.VIRTQ_DESC_F_AVAIL : L.VIRTQ_DESC_F_USED;
  }

  private publishChain(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], id: number): void {
    const n = readable.length + writable.length;
    const first = this.nextAvail;
    const firstFlags = this.availFlags(this.availWrap) | (readable.length === 0 ? L.VIRTQ_DESC_F_WRITE : 0) | (n > 1 ? L.VIRTQ_DESC_F_NEXT : 0);
    for (let i = 0; i < n; i++) {
      const write = i >= readable.length;
      const b = write ? writable[i - readable.length] : readable[i];
      const off = this.ringOff + this.nextAvail * L.PDESC_BYTES;
      // The buffer id belongs in the last descriptor (2.8.6); writing it in all is harmless.
      this.writeDesc(off, b.gpa, b.len, id);
      this.guest.wrote(this.descGpa + this.nextAvail * L.PDESC_BYTES, L.PDESC_BYTES);
      if (i > 0) {
        const flags = this.availFlags(this.availWrap) | (write ? L.VIRTQ_DESC_F_WRITE : 0) | (i < n - 1 ? L.VIRTQ_DESC_F_NEXT : 0);
        Atomics.store(this.u16, (off + L.PDESC_FLAGS) >>> 1, flags);
      }
      this.advanceAvail();
    }
    // The first descriptor becomes available last: the device never sees a partial chain (2.8.6).
    Atomics.store(this.u16, (this.ringOff + first * L.PDESC_BYTES + L.PDESC_FLAGS) >>> 1, firstFlags);
  }

  private publishIndirect(tableGpa: Gpa, tableBytes: number, id: number): void {
    const off = this.ringOff + this.nextAvail * L.PDESC_BYTES;
    this.writeDesc(off, tableGpa, tableBytes, id);
    this.guest.wrote(this.descGpa + this.nextAvail * L.PDESC_BYTES, L.PDESC_BYTES);
    const flags = this.availFlags(this.availWrap) | L.VIRTQ_DESC_F_INDIRECT;
    this.advanceAvail();
    Atomics.store(this.u16, (off + L.PDESC_FLAGS) >>> 1, flags);
  }

  private advanceAvail(): void {
    if (++this.nextAvail === this.size) {
      this.nextAvail = 0;
      this.availWrap ^= 1;
    }
  }

  /**
   * Whether the device wants a kick for the buffers added since the last call (device event
   * suppression, 2.8.10). The seq-cst flags stores before this load are the barrier 2.8.22 asks for.
   */
  needsKick(): boolean {
    const newPos = this.pos(this.nextAvail, this.availWrap);
    const oldPos = this.kickPos;
    this.kickPos = newPos;
    if (newPos === oldPos) return false;
    const event = Atomics.load(this.u32, this.deviceEventIdx);
    const mode = (event >>> 16) & 3;
    if (mode === L.RING_EVENT_FLAGS_DISABLE) return false;
    if (mode !== L.RING_EVENT_FLAGS_DESC || !this.eventIdx) return true;
    const off = event & 0x7fff;
    if (off >= this.size) return false;
    const cycle = 2 * this.size;
    const eventPos = this.pos(off, (event >>> 15) & 1);
    return (eventPos - oldPos + cycle) % cycle < (newPos - oldPos + cycle) % cycle;
  }

  /** Whether the next used descriptor has been written. */
  hasUsed(): boolean {
    const flags = Atomics.load(this.u16, (this.ringOff + this.nextUsed * L.PDESC_BYTES + L.PDESC_FLAGS) >>> 1);
    return ((flags >> 7) & 1) === this.usedWrap && ((flags >> 15) & 1) === this.usedWrap;
  }

  /** Take the next used buffer, or null if there is none yet. */
  popUsed(): UsedBuffer | null {
    if (!this.hasUsed()) return null;
    const off = this.ringOff + this.nextUsed * L.PDESC_BYTES;
    const id = this.dv.getUint16(off + L.PDESC_ID, true);
    const len = this.dv.getUint32(off + L.PDESC_LEN, true);
    const slots = id < this.size ? this.slotsById[id] : 0;
    if (slots === 0) throw new VirtioError(ST_BAD_ID, `guest packed driver (used id ${id} is not in flight)`);
    // Skip the rest of the chain's slots to where the next used descriptor goes (2.8.6).
    this.nextUsed += slots;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap ^= 1;
    }
    this.freeSlots += slots;
    this.slotsById[id] = 0;
    const table = this.tableById[id];
    if (table !== NO_TABLE) {
      this.ram.release(table);
      this.tableById[id] = NO_TABLE;
    }
    this.freeIds[this.freeIdCount++] = id;
    return { id, len };
  }

  /** Take up to `max` used buffers. */
  collectUsed(max = Infinity): UsedBuffer[] {
    const out: UsedBuffer[] = [];
    while (out.length < max) {
      const u = this.popUsed();
      if (u === null) break;
      out.push(u);
    }
    return out;
  }

  /**
   * Ask for used buffer notifications: with VIRTIO_F_EVENT_IDX, once the slot `slotsAhead` past
   * the next used one is used (DESC mode); else for every used buffer (ENABLE). Returns true if a
   * used buffer is already there, so the caller collects before sleeping.
   */
  enableUsedNotify(slotsAhead = 0): boolean {
    let value = L.RING_EVENT_FLAGS_ENABLE << 16;
    if (this.eventIdx) {
      let slot = this.nextUsed + Math.min(Math.max(0, slotsAhead), this.size - 1);
      let wrap = this.usedWrap;
      if (slot >= this.size) {
        slot -= this.size;
        wrap ^= 1;
      }
      value = ((L.RING_EVENT_FLAGS_DESC << 16) | (wrap << 15) | slot) >>> 0;
    }
    Atomics.store(this.u32, this.driverEventIdx, value);
    this.guest.wrote(this.driverEventGpa, L.EVENT_BYTES);
    return this.hasUsed();
  }

  /** Tell the device not to notify on used buffers (the driver is polling). */
  disableUsedNotify(): void {
    Atomics.store(this.u32, this.driverEventIdx, L.RING_EVENT_FLAGS_DISABLE << 16);
    this.guest.wrote(this.driverEventGpa, L.EVENT_BYTES);
  }

  /** Give the ring, event areas and any indirect tables back to the guest RAM allocator. */
  dispose(): void {
    for (let id = 0; id < this.size; id++) {
      if (this.tableById[id] !== NO_TABLE) this.ram.release(this.tableById[id]);
    }
    this.tableById.fill(NO_TABLE);
    this.ram.release(this.descGpa);
    this.ram.release(this.driverEventGpa);
    this.ram.release(this.deviceEventGpa);
  }
}
