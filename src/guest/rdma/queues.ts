// Guest-side objects that own virtqueues: work rings (send, receive, SRQ queues: WQE slots in
// guest memory, one chain per WQE) and completion queues (64-byte CQE buffers the device fills).
import { CQE_BYTES } from '../../device/abi.js';
import { type Cqe, decodeCqe } from '../../device/cqe.js';
import type { DriverTransport } from '../../device/driver-transport.js';
import type { Arena } from '../../memory/arena.js';
import { MemoryError } from '../../memory/errors.js';
import { gpa } from '../../memory/gpa.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { type Fail, array, int, ints, record, u64 } from '../../util/plain.js';
import { GuestError, GuestErrorCode } from './errors.js';
import { type GuestBuffer, type GuestRing, type GuestRingState, restoreGuestRing } from './ring.js';

/** What queue objects need from the device they belong to. */
export interface QueueHost {
  readonly transport: DriverTransport;
  readonly guest: GuestMemory;
  readonly alloc: Arena;
}

interface Slot {
  slot: number;
  wrId: bigint;
  /** Guest buffers allocated for this one chain (pieces beyond the slot): released when used. */
  own: number[];
}

/** Plain data: a work ring's driver-private state (wr_ids as decimal strings). */
export interface WqeRingState {
  vq: number;
  slotBytes: number;
  base: number;
  ring: GuestRingState;
  freeSlots: number[];
  /** [token, slot, wrId, guest buffers owned] per WQE in flight. */
  inUse: [number, number, string, number[]][];
  nextToken: number;
  returned: string[];
}

/** Plain data: a completion ring's driver-private state. */
export interface CqeRingState {
  vq: number;
  bufferBytes: number;
  base: number;
  ring: GuestRingState;
  consumed: number;
  returnedEmpty: number;
}

/** Throws GuestError BAD_STATE. */
export const badState: Fail = (message) => {
  throw new GuestError(GuestErrorCode.BadState, message);
};

/** A ring from its saved state, with RangeErrors from the ring drivers reported as BAD_STATE. */
function ringFromState(host: QueueHost, state: unknown, what: string): GuestRing {
  try {
    return restoreGuestRing(host.guest, host.alloc, state);
  } catch (err) {
    if (err instanceof RangeError || err instanceof MemoryError) badState(`${what}: ${err.message}`);
    throw err;
  }
}

/**
 * A send, receive or SRQ queue: WQEs written into fixed-size slots in guest memory, one readable
 * descriptor each, offered in posting order; a used chain frees its slot.
 */
export class WqeRing {
  private readonly base: number;
  private readonly freeSlots: number[];
  private readonly inUse = new Map<number, Slot>();
  private nextToken = 0;
  /** wr_ids of returned chains, in used-ring order (takeReturned()). */
  private returned: bigint[] = [];

  /** A fresh queue's slots from the allocator; or, with `base`, slots already there (restore). */
  constructor(private readonly host: QueueHost, readonly vq: number, readonly ring: GuestRing, readonly slotBytes: number, base?: number) {
    this.base = base ?? host.alloc.alloc(slotBytes * ring.size, 64);
    this.freeSlots = base !== undefined ? [] : Array.from({ length: ring.size }, (_, i) => ring.size - 1 - i);
    if (base === undefined) ring.disableCallbacks();
  }

  saveState(): WqeRingState {
    return {
      vq: this.vq, slotBytes: this.slotBytes, base: this.base, ring: this.ring.saveState(), freeSlots: [...this.freeSlots],
      inUse: [...this.inUse].map(([token, s]) => [token, s.slot, s.wrId.toString(), [...s.own]]),
      nextToken: this.nextToken, returned: this.returned.map((w) => w.toString()),
    };
  }

  /** A queue in a saved state (GuestError BAD_STATE if it is malformed or inconsistent). */
  static fromState(host: QueueHost, state: unknown, what = 'work ring'): WqeRing {
    const s = record(state, what, badState);
    const ring = ringFromState(host, s.ring, what);
    const size = ring.size;
    const vq = int(s.vq, 0, 0xffff, `${what}.vq`, badState);
    const slotBytes = int(s.slotBytes, 1, 2 ** 24, `${what}.slotBytes`, badState);
    const q = new WqeRing(host, vq, ring, slotBytes, int(s.base, 0, Number.MAX_SAFE_INTEGER, `${what}.base`, badState));
    const seen = new Set<number>();
    const slotOnce = (slot: number): void => {
      if (seen.has(slot)) badState(`${what}: slot ${slot} is used twice`);
      seen.add(slot);
    };
    for (const slot of ints(s.freeSlots, 0, size - 1, `${what}.freeSlots`, badState)) {
      slotOnce(slot);
      q.freeSlots.push(slot);
    }
    array(s.inUse, `${what}.inUse`, badState).forEach((entry, i) => {
      const e = array(entry, `${what}.inUse[${i}]`, badState, 4);
      const token = int(e[0], 0, 0x7fffffff, `${what}.inUse[${i}] token`, badState);
      const slot = int(e[1], 0, size - 1, `${what}.inUse[${i}] slot`, badState);
      slotOnce(slot);
      if (q.inUse.has(token)) badState(`${what}: token ${token} is in flight twice`);
      q.inUse.set(token, { slot, wrId: u64(e[2], `${what}.inUse[${i}] wrId`, badState), own: ints(e[3], 0, Number.MAX_SAFE_INTEGER, `${what}.inUse[${i}] own`, badState) });
    });
    if (seen.size !== size) badState(`${what}: ${seen.size} slots accounted for, the ring has ${size}`);
    q.nextToken = int(s.nextToken, 0, Number.MAX_SAFE_INTEGER, `${what}.nextToken`, badState);
    q.returned = array(s.returned, `${what}.returned`, badState).map((w, i) => u64(w, `${what}.returned[${i}]`, badState));
    return q;
  }

  /** WQEs posted and not yet returned. */
  get outstanding(): number {
    return this.inUse.size;
  }

  /** Offer WQEs (already encoded); kicks if the device wants it. Throws RingFull if they do not all fit. */
  post(wqes: readonly { bytes: Uint8Array; wrId: bigint }[]): void {
    this.reclaim();
    if (wqes.length > this.freeSlots.length) {
      throw new GuestError(GuestErrorCode.RingFull, `queue ${this.vq} has room for ${this.freeSlots.length} WQEs`);
    }
    // One slot, one descriptor per WQE: a free slot is a free descriptor.
    for (const w of wqes) if (!this.add([w.bytes], w.wrId)) throw new GuestError(GuestErrorCode.RingFull, `queue ${this.vq} is full`);
    if (this.ring.publish()) this.host.transport.kick(this.vq);
  }

  /** Offer one chain of arbitrary readable pieces (hostile tests); returns false if full. */
  postRaw(pieces: readonly Uint8Array[], wrId = 0n): boolean {
    this.reclaim();
    if (this.freeSlots.length === 0 || !this.add(pieces, wrId)) return false;
    if (this.ring.publish()) this.host.transport.kick(this.vq);
    return true;
  }

  private add(pieces: readonly Uint8Array[], wrId: bigint): boolean {
    const token = this.nextToken++ & 0x7fffffff;
    const buffers: GuestBuffer[] = [];
    const own: number[] = [];
    const slot = this.freeSlots.pop() as number;
    let slotUsed = false;
    for (const bytes of pieces) {
      let at: number;
      if (!slotUsed && bytes.length <= this.slotBytes) {
        at = this.base + slot * this.slotBytes;
        slotUsed = true;
      } else {
        at = this.host.alloc.alloc(Math.max(1, bytes.length), 8);
        own.push(at);
      }
      if (bytes.length > 0) this.host.guest.write(gpa(at), bytes);
      buffers.push({ gpa: at, len: bytes.length });
    }
    if (!this.ring.add(buffers, [], token)) {
      this.freeSlots.push(slot);
      for (const at of own) this.host.alloc.release(at);
      return false;
    }
    this.inUse.set(token, { slot, wrId, own });
    return true;
  }

  /** Collect used chains: their slots are free again. Returns how many came back. */
  reclaim(): number {
    const used = this.ring.collect();
    for (const u of used) {
      const slot = this.inUse.get(u.token);
      if (slot === undefined) continue;
      this.inUse.delete(u.token);
      this.freeSlots.push(slot.slot);
      this.returned.push(slot.wrId);
      for (const at of slot.own) this.host.alloc.release(at);
    }
    return used.length;
  }

  /** wr_ids of chains the device returned since the last call, in used-ring order. */
  takeReturned(): bigint[] {
    this.reclaim();
    const out = this.returned;
    this.returned = [];
    return out;
  }

  dispose(): void {
    for (const slot of this.inUse.values()) for (const at of slot.own) this.host.alloc.release(at);
    this.inUse.clear();
    this.host.alloc.release(this.base);
    this.ring.dispose();
  }
}

const NO_BUFFERS: readonly GuestBuffer[] = Object.freeze([]);

/** The guest side of a CQ's completion queue: CQE buffers, reposted as they are consumed. */
export class CqeRing {
  private readonly base: number;
  private readonly offered = { gpa: 0, len: 0 };
  private readonly offeredList = [this.offered];
  /** CQEs consumed since creation (compare with REQ_NOTIFY_CQ's cqes_written). */
  consumed = 0;
  /** Buffers the device returned empty (destroy, or a buffer too short). */
  returnedEmpty = 0;

  /** Offers `buffers` fresh CQE buffers; or, with `base`, takes over buffers already offered (restore). */
  constructor(private readonly host: QueueHost, readonly vq: number, readonly ring: GuestRing, buffers: number, readonly bufferBytes = CQE_BYTES, base?: number) {
    this.base = base ?? host.alloc.alloc(bufferBytes * Math.max(1, buffers), 64);
    if (base !== undefined) return;
    for (let i = 0; i < buffers; i++) this.offer(i);
    if (this.ring.publish()) host.transport.kick(vq);
  }

  saveState(): CqeRingState {
    return { vq: this.vq, bufferBytes: this.bufferBytes, base: this.base, ring: this.ring.saveState(), consumed: this.consumed, returnedEmpty: this.returnedEmpty };
  }

  /** A completion ring in a saved state (GuestError BAD_STATE if it is malformed). */
  static fromState(host: QueueHost, state: unknown, what = 'completion ring'): CqeRing {
    const s = record(state, what, badState);
    const ring = ringFromState(host, s.ring, what);
    const vq = int(s.vq, 0, 0xffff, `${what}.vq`, badState);
    const bufferBytes = int(s.bufferBytes, 1, 2 ** 24, `${what}.bufferBytes`, badState);
    const q = new CqeRing(host, vq, ring, 0, bufferBytes, int(s.base, 0, Number.MAX_SAFE_INTEGER, `${what}.base`, badState));
    q.consumed = int(s.consumed, 0, 0xffffffff, `${what}.consumed`, badState);
    q.returnedEmpty = int(s.returnedEmpty, 0, Number.MAX_SAFE_INTEGER, `${what}.returnedEmpty`, badState);
    return q;
  }

  private offer(i: number): void {
    // The ring copies the buffer into a descriptor: one list, refilled for every offer.
    this.offered.gpa = this.base + i * this.bufferBytes;
    this.offered.len = this.bufferBytes;
    if (!this.ring.add(NO_BUFFERS, this.offeredList, i)) {
      throw new GuestError(GuestErrorCode.RingFull, `completion queue ${this.vq} is full`);
    }
  }

  /**
   * Read up to `max` CQEs, in order, and offer their buffers again. Each is decoded straight from
   * its buffer, before the buffer is offered again (a device in another thread may then write it).
   */
  poll(max = Infinity): Cqe[] {
    const used = this.ring.collect(max);
    const out: Cqe[] = [];
    for (const u of used) {
      if (u.len >= CQE_BYTES) {
        out.push(decodeCqe(this.host.guest.slice(gpa(this.base + u.token * this.bufferBytes), CQE_BYTES)));
        this.consumed = (this.consumed + 1) >>> 0;
      } else {
        this.returnedEmpty++;
      }
    }
    this.reoffer(used);
    return out;
  }

  /** Used buffers in order with the bytes the device wrote (a copy); the buffers are offered again. */
  pollRaw(max = Infinity): { len: number; bytes: Uint8Array }[] {
    const used = this.ring.collect(max);
    const out = used.map((u) => ({ len: u.len, bytes: this.host.guest.slice(gpa(this.base + u.token * this.bufferBytes), this.bufferBytes).slice() }));
    this.reoffer(used);
    return out;
  }

  /** Offer the collected buffers again, and kick if the device wants it. */
  private reoffer(used: readonly { token: number }[]): void {
    for (const u of used) this.offer(u.token);
    if (used.length > 0 && this.ring.publish()) this.host.transport.kick(this.vq);
  }

  /** Collect without reposting (the CQ is going away). */
  drain(): number {
    return this.ring.collect().length;
  }

  dispose(): void {
    this.host.alloc.release(this.base);
    this.ring.dispose();
  }
}
