// The guest driver side of a split virtqueue (virtio 1.2 2.7.13, "Supplying Buffers to The
// Device", and 2.7.14, "Receiving Used Buffers From The Device"): lays the rings out in guest
// memory, adds buffer chains (direct or through an indirect table), decides whether to kick,
// collects used buffers and frees their descriptors. Tests, fuzzers, benchmarks and the demo all
// drive the device through this library, exactly as a guest would: it touches guest memory only
// through GuestMemory and publishes indices with Atomics. What it stores through its views is
// marked in the GuestMemory's write log (the vCPU's dirty log, R4), as KVM would track it.
import type { Arena } from '../memory/arena.js';
import { gpa, type Gpa } from '../memory/gpa.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { VirtioError } from '../virtio/errors.js';
import {
  DESC_BYTES, MAX_SPLIT_QUEUE_SIZE, SPLIT_RING_ALIGN, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, splitRingBytes,
} from '../virtio/split-block.js';
import type { SplitQueueState } from '../virtio/split-queue.js';
import { type Fail, bool, int, ints, record } from '../util/plain.js';
import { ST_BAD_ID } from '../wasm/status.js';

/** A guest buffer: guest-physical address and length in bytes. */
export interface GuestBuffer {
  gpa: number;
  len: number;
}

export interface SplitDriverOptions {
  size: number;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirectDesc?: boolean;
}

/** A buffer the device gave back: head id, bytes it wrote, and the caller's token. */
export interface UsedBuffer<T> {
  id: number;
  len: number;
  token: T;
}

const NO_TABLE = -1;
const U32_MAX = 2 ** 32 - 1;

/**
 * Plain data: the driver's private state, which a real guest keeps in its own RAM (migration
 * carries it as the guest's state). Tokens must be numbers; null marks a head not in flight.
 */
export interface SplitDriverState {
  size: number;
  eventIdx: boolean;
  indirectDesc: boolean;
  descGpa: number;
  availGpa: number;
  usedGpa: number;
  freeNext: number[];
  chainDescs: number[];
  tableGpa: number[];
  tokens: (number | null)[];
  freeHead: number;
  free: number;
  availShadow: number;
  published: number;
  lastUsed: number;
}

export class SplitRingDriver<T = unknown> {
  readonly size: number;
  readonly eventIdx: boolean;
  readonly indirectDesc: boolean;
  readonly descGpa: Gpa;
  readonly availGpa: Gpa;
  readonly usedGpa: Gpa;
  private readonly desc: DataView;
  /** avail ring as u16 words: 0 flags, 1 idx, 2.. ring, 2 + size used_event. */
  private readonly avail: Uint16Array;
  private readonly used: DataView;
  /** used ring as u16 words: 0 flags, 1 idx, 2 + 4 * size avail_event. */
  private readonly usedWords: Uint16Array;
  /** Driver-private free list links; kept intact while a chain is out, to free it in one step. */
  private readonly freeNext: Uint16Array;
  /** Per head: ring descriptors in its chain (0 when the head is not in flight). */
  private readonly chainDescs: Uint16Array;
  private readonly tableGpa: Float64Array;
  private readonly tokens: (T | undefined)[];
  private freeHead = 0;
  private free: number;
  private availShadow = 0;
  private published = 0;
  private lastUsed = 0;

  private constructor(private readonly guest: GuestMemory, private readonly alloc: Arena, options: SplitDriverOptions, rings: [Gpa, Gpa, Gpa]) {
    const { size } = options;
    this.size = size;
    this.eventIdx = options.eventIdx ?? false;
    this.indirectDesc = options.indirectDesc ?? false;
    [this.descGpa, this.availGpa, this.usedGpa] = rings;
    const bytes = splitRingBytes(size);
    const d = guest.slice(this.descGpa, bytes.desc);
    const a = guest.slice(this.availGpa, bytes.avail);
    const u = guest.slice(this.usedGpa, bytes.used);
    this.desc = new DataView(d.buffer, d.byteOffset, d.byteLength);
    this.avail = new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2);
    this.used = new DataView(u.buffer, u.byteOffset, u.byteLength);
    this.usedWords = new Uint16Array(u.buffer, u.byteOffset, u.byteLength / 2);
    this.freeNext = Uint16Array.from({ length: size }, (_, i) => (i + 1) % size);
    this.chainDescs = new Uint16Array(size);
    this.tableGpa = new Float64Array(size).fill(NO_TABLE);
    this.tokens = new Array<T | undefined>(size);
    this.free = size;
  }

  /** Allocate zeroed rings for a queue of `options.size` from the guest-physical allocator. */
  static create<T = unknown>(guest: GuestMemory, alloc: Arena, options: SplitDriverOptions): SplitRingDriver<T> {
    const { size } = options;
    if (!Number.isInteger(size) || size < 1 || size > MAX_SPLIT_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new RangeError(`split queue size must be a power of two up to ${MAX_SPLIT_QUEUE_SIZE}, got ${size}`);
    }
    const bytes = splitRingBytes(size);
    const rings: [Gpa, Gpa, Gpa] = [
      gpa(alloc.alloc(bytes.desc, SPLIT_RING_ALIGN.desc)),
      gpa(alloc.alloc(bytes.avail, SPLIT_RING_ALIGN.avail)),
      gpa(alloc.alloc(bytes.used, SPLIT_RING_ALIGN.used)),
    ];
    guest.fill(rings[0], bytes.desc, 0);
    guest.fill(rings[1], bytes.avail, 0);
    guest.fill(rings[2], bytes.used, 0);
    return new SplitRingDriver<T>(guest, alloc, options, rings);
  }

  saveState(): SplitDriverState {
    const tokens = Array.from(this.tokens, (t, head) => {
      if (this.chainDescs[head] === 0) return null;
      if (typeof t !== 'number') throw new TypeError(`split ring: token of head ${head} is not a number; only numeric tokens can be saved`);
      return t;
    });
    return {
      size: this.size, eventIdx: this.eventIdx, indirectDesc: this.indirectDesc, descGpa: this.descGpa, availGpa: this.availGpa, usedGpa: this.usedGpa,
      freeNext: [...this.freeNext], chainDescs: [...this.chainDescs], tableGpa: [...this.tableGpa], tokens,
      freeHead: this.freeHead, free: this.free, availShadow: this.availShadow, published: this.published, lastUsed: this.lastUsed,
    };
  }

  /**
   * The driver in a saved state, over rings already in guest memory (nothing is allocated or
   * written). Throws RangeError naming the first field that is out of range or inconsistent.
   */
  static fromState(guest: GuestMemory, alloc: Arena, state: unknown): SplitRingDriver<number> {
    const fail: Fail = (message) => {
      throw new RangeError(`split ring state: ${message}`);
    };
    const s = record(state, 'state', fail);
    const size = int(s.size, 1, MAX_SPLIT_QUEUE_SIZE, 'size', fail);
    if ((size & (size - 1)) !== 0) fail(`size ${size} is not a power of two`);
    const gpaOf = (name: string) => gpa(int(s[name], 0, Number.MAX_SAFE_INTEGER, name, fail));
    const rings: [Gpa, Gpa, Gpa] = [gpaOf('descGpa'), gpaOf('availGpa'), gpaOf('usedGpa')];
    const freeNext = ints(s.freeNext, 0, size - 1, 'freeNext', fail, size);
    const chainDescs = ints(s.chainDescs, 0, size, 'chainDescs', fail, size);
    const tableGpa = ints(s.tableGpa, NO_TABLE, Number.MAX_SAFE_INTEGER, 'tableGpa', fail, size);
    const tokens = ints((Array.isArray(s.tokens) ? s.tokens : []).map((t) => t ?? -1), -1, 0x7fffffff, 'tokens', fail, size);
    const free = int(s.free, 0, size, 'free', fail);
    if (chainDescs.reduce((a, b) => a + b, 0) !== size - free) fail(`chains hold ${chainDescs.reduce((a, b) => a + b, 0)} descriptors, free says ${size - free} are out`);
    for (let h = 0; h < size; h++) {
      if ((chainDescs[h] === 0) !== (tokens[h] === -1)) fail(`head ${h}: a token without a chain or a chain without a token`);
      if (tableGpa[h] !== NO_TABLE && chainDescs[h] !== 1) fail(`head ${h}: an indirect table on a chain of ${chainDescs[h]} descriptors`);
    }
    const d = new SplitRingDriver<number>(guest, alloc, { size, eventIdx: bool(s.eventIdx, 'eventIdx', fail), indirectDesc: bool(s.indirectDesc, 'indirectDesc', fail) }, rings);
    d.freeNext.set(freeNext);
    d.chainDescs.set(chainDescs);
    d.tableGpa.set(tableGpa);
    tokens.forEach((t, h) => {
      d.tokens[h] = t === -1 ? undefined : t;
    });
    d.freeHead = int(s.freeHead, 0, size - 1, 'freeHead', fail);
    d.free = free;
    d.availShadow = int(s.availShadow, 0, 0xffff, 'availShadow', fail);
    d.published = int(s.published, 0, 0xffff, 'published', fail);
    d.lastUsed = int(s.lastUsed, 0, 0xffff, 'lastUsed', fail);
    return d;
  }

  /** The device's state when the driver sets DRIVER_OK on this fresh queue. */
  initialDeviceState(): SplitQueueState {
    return {
      size: this.size,
      descGpa: this.descGpa,
      availGpa: this.availGpa,
      usedGpa: this.usedGpa,
      nextAvail: 0,
      nextUsed: 0,
      eventIdx: this.eventIdx,
      indirectDesc: this.indirectDesc,
    };
  }

  /** Free descriptors in the table. */
  get numFree(): number {
    return this.free;
  }

  /**
   * Add a chain: `readable` buffers (device reads) then `writable` ones (device writes). With
   * `indirect` the buffers go in an indirect table taking one ring descriptor. Returns the head
   * index, or -1 if the ring has too few free descriptors. The chain is offered at publish().
   */
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: T, indirect = false): number {
    const n = readable.length + writable.length;
    if (n === 0) throw new RangeError('a chain needs at least one buffer');
    if (indirect && !this.indirectDesc) throw new RangeError('VIRTIO_F_INDIRECT_DESC was not negotiated');
    const ringDescs = indirect ? 1 : n;
    if (!indirect && n > this.size) throw new RangeError(`a chain of ${n} buffers exceeds the queue size ${this.size}`);
    if (ringDescs > this.free) return -1;
    // Buffer i of the chain: the readable ones, then the writable ones (no array of both: this
    // runs for every WQE and CQE buffer a guest offers).
    const at = (i: number): GuestBuffer => (i < readable.length ? readable[i] : writable[i - readable.length]);
    for (let i = 0; i < n; i++) {
      const b = at(i);
      if (!Number.isSafeInteger(b.gpa) || b.gpa < 0 || !Number.isInteger(b.len) || b.len < 0 || b.len > U32_MAX) {
        throw new RangeError(`bad guest buffer ${b.gpa}+${b.len}`);
      }
    }
    const head = this.freeHead;
    if (indirect) {
      const table = gpa(this.alloc.alloc(n * DESC_BYTES, DESC_BYTES));
      const t = this.guest.slice(table, n * DESC_BYTES);
      const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
      for (let i = 0; i < n; i++) {
        const b = at(i);
        const flags = (i >= readable.length ? VIRTQ_DESC_F_WRITE : 0) | (i < n - 1 ? VIRTQ_DESC_F_NEXT : 0);
        writeDesc(view, i, b.gpa, b.len, flags, i < n - 1 ? i + 1 : 0);
      }
      this.guest.wrote(table, n * DESC_BYTES);
      writeDesc(this.desc, head, table, n * DESC_BYTES, VIRTQ_DESC_F_INDIRECT, 0);
      this.guest.wrote(this.descGpa + head * DESC_BYTES, DESC_BYTES);
      this.tableGpa[head] = table;
      this.freeHead = this.freeNext[head];
    } else {
      let idx = head;
      for (let i = 0; i < n; i++) {
        const b = at(i);
        const last = i === n - 1;
        const flags = (i >= readable.length ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT);
        writeDesc(this.desc, idx, b.gpa, b.len, flags, last ? 0 : this.freeNext[idx]);
        this.guest.wrote(this.descGpa + idx * DESC_BYTES, DESC_BYTES);
        idx = this.freeNext[idx];
      }
      this.freeHead = idx;
    }
    this.free -= ringDescs;
    this.chainDescs[head] = ringDescs;
    this.tokens[head] = token;
    this.offerHead(head);
    return head;
  }

  /** Put `head` in the next avail ring slot (not yet published). */
  private offerHead(head: number): void {
    const slot = this.availShadow & (this.size - 1);
    this.avail[2 + slot] = head;
    this.guest.wrote(this.availGpa + 4 + 2 * slot, 2);
    this.availShadow = (this.availShadow + 1) & 0xffff;
  }

  /**
   * Make the added chains available (store avail idx, release) and say whether the device wants
   * a kick (2.7.13.4: avail_event with VIRTIO_F_EVENT_IDX, else VIRTQ_USED_F_NO_NOTIFY).
   */
  publish(): boolean {
    const now = this.availShadow;
    const old = this.published;
    if (now === old) return false;
    Atomics.store(this.avail, 1, now);
    this.guest.wrote(this.availGpa + 2, 2);
    this.published = now;
    if (this.eventIdx) {
      const availEvent = Atomics.load(this.usedWords, 2 + 4 * this.size);
      return ((now - availEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (Atomics.load(this.usedWords, 0) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** Used buffers the device returned, in used-ring order; their descriptors are freed. */
  collect(max = Infinity): UsedBuffer<T>[] {
    const usedIdx = Atomics.load(this.usedWords, 1);
    if (((usedIdx - this.lastUsed) & 0xffff) > this.size) throw new VirtioError(ST_BAD_ID, 'guest split driver: used idx jumped');
    const out: UsedBuffer<T>[] = [];
    while (this.lastUsed !== usedIdx && out.length < max) {
      const slot = 4 + (this.lastUsed & (this.size - 1)) * 8;
      const id = this.used.getUint32(slot, true);
      const len = this.used.getUint32(slot + 4, true);
      if (id >= this.size || this.chainDescs[id] === 0) throw new VirtioError(ST_BAD_ID, `guest split driver: used id ${id}`);
      out.push({ id, len, token: this.tokens[id] as T });
      this.release(id);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /**
   * Offer every used chain again as it is (same descriptors, same token), without freeing it:
   * a receive ring refilling itself. Returns how many were re-added; publish() offers them.
   */
  repostUsed(): number {
    const usedIdx = Atomics.load(this.usedWords, 1);
    const mask = this.size - 1;
    let n = 0;
    while (this.lastUsed !== usedIdx) {
      const id = this.used.getUint32(4 + (this.lastUsed & mask) * 8, true);
      if (id >= this.size || this.chainDescs[id] === 0) throw new VirtioError(ST_BAD_ID, `guest split driver: used id ${id}`);
      this.offerHead(id);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      n++;
    }
    return n;
  }

  /**
   * Ask for a used-buffer notification (2.7.10): used_event = the next entry expected, or clear
   * VIRTQ_AVAIL_F_NO_INTERRUPT. Returns true if used buffers are already waiting.
   */
  enableCallbacks(): boolean {
    if (this.eventIdx) Atomics.store(this.avail, 2 + this.size, this.lastUsed);
    else Atomics.store(this.avail, 0, 0);
    this.guest.wrote(this.eventIdx ? this.availGpa + 4 + 2 * this.size : this.availGpa, 2);
    return Atomics.load(this.usedWords, 1) !== this.lastUsed;
  }

  /** Ask for no used-buffer notifications (the driver polls). */
  disableCallbacks(): void {
    // With event idx, used_event staying behind already suppresses further notifications.
    if (!this.eventIdx) {
      Atomics.store(this.avail, 0, VIRTQ_AVAIL_F_NO_INTERRUPT);
      this.guest.wrote(this.availGpa, 2);
    }
  }

  /** Return the rings and any indirect tables to the allocator. */
  dispose(): void {
    for (let head = 0; head < this.size; head++) {
      if (this.tableGpa[head] !== NO_TABLE) this.alloc.release(this.tableGpa[head]);
      this.tableGpa[head] = NO_TABLE;
    }
    this.alloc.release(this.descGpa);
    this.alloc.release(this.availGpa);
    this.alloc.release(this.usedGpa);
  }

  private release(head: number): void {
    let last = head;
    for (let i = 1; i < this.chainDescs[head]; i++) last = this.freeNext[last];
    this.free += this.chainDescs[head];
    this.freeNext[last] = this.freeHead;
    this.freeHead = head;
    this.chainDescs[head] = 0;
    this.tokens[head] = undefined;
    if (this.tableGpa[head] !== NO_TABLE) {
      this.alloc.release(this.tableGpa[head]);
      this.tableGpa[head] = NO_TABLE;
    }
  }
}

function writeDesc(view: DataView, index: number, address: number, len: number, flags: number, next: number): void {
  const d = index * DESC_BYTES;
  view.setUint32(d, address % 2 ** 32, true);
  view.setUint32(d + 4, Math.floor(address / 2 ** 32), true);
  view.setUint32(d + 8, len, true);
  view.setUint16(d + 12, flags, true);
  view.setUint16(d + 14, next, true);
}
