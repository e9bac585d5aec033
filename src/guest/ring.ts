// One guest-side ring API over both formats, for code that does not care which one was
// negotiated (the demo's ring pump, the virtio-rdma guest library). SplitRingDriver and
// PackedDriver keep their format-specific extras; this adapts them to one shape.
import type { Arena } from '../memory/arena.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { QueueState } from '../virtio/queue-state.js';
import { PackedDriver, type PackedDriverState } from './packed-ring.js';
import { type GuestBuffer, SplitRingDriver, type SplitDriverState } from './split-ring.js';

export type { GuestBuffer };

export type RingFormat = 'split' | 'packed';

/** A used buffer with the token its chain was offered with. */
export interface Completed<T> {
  len: number;
  token: T;
}

/** Plain data: a guest ring's driver-private state (tokens must be numbers to be saved). */
export type GuestRingState =
  | { format: 'split'; driver: SplitDriverState }
  | { format: 'packed'; driver: PackedDriverState; tokens: (number | null)[] };

export interface GuestRingOptions {
  size: number;
  eventIdx?: boolean;
  indirect?: boolean;
}

export interface GuestRing<T> {
  readonly format: RingFormat;
  readonly size: number;
  /** The device-side state of this fresh queue, to build the device queue from. */
  deviceState(): QueueState;
  /** Offer a chain (readable buffers, then writable ones); false if the ring is full. */
  offer(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: T, indirect?: boolean): boolean;
  /** Make offered chains visible to the device; true if it asked to be kicked. */
  publish(): boolean;
  /** Buffers the device used, in used order. */
  takeUsed(max?: number): Completed<T>[];
  /** Ask for a used-buffer notification; true if used buffers are already waiting. */
  enableUsedNotify(): boolean;
  disableUsedNotify(): void;
  dispose(): void;
  /** The driver's state, for migration; throws TypeError if a chain in flight has a non-numeric token. */
  saveState(): GuestRingState;
}

class SplitGuestRing<T> implements GuestRing<T> {
  readonly format = 'split';
  constructor(private readonly d: SplitRingDriver<T>) {}
  get size(): number {
    return this.d.size;
  }
  deviceState(): QueueState {
    return { format: 'split', ...this.d.initialDeviceState() };
  }
  offer(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: T, indirect = false): boolean {
    return this.d.add(readable, writable, token, indirect) >= 0;
  }
  publish(): boolean {
    return this.d.publish();
  }
  takeUsed(max = Infinity): Completed<T>[] {
    return this.d.collect(max);
  }
  enableUsedNotify(): boolean {
    return this.d.enableCallbacks();
  }
  disableUsedNotify(): void {
    this.d.disableCallbacks();
  }
  dispose(): void {
    this.d.dispose();
  }
  saveState(): GuestRingState {
    return { format: 'split', driver: this.d.saveState() };
  }
}

class PackedGuestRing<T> implements GuestRing<T> {
  readonly format = 'packed';
  private readonly tokens: (T | undefined)[];
  constructor(private readonly d: PackedDriver, tokens?: (T | undefined)[]) {
    this.tokens = tokens ?? new Array<T | undefined>(d.size);
  }
  get size(): number {
    return this.d.size;
  }
  deviceState(): QueueState {
    return { format: 'packed', ...this.d.deviceState() };
  }
  offer(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: T, indirect = false): boolean {
    const id = this.d.add(readable, writable, indirect);
    if (id === null) return false;
    this.tokens[id] = token;
    return true;
  }
  publish(): boolean {
    // The packed driver makes each chain available as it adds it (2.8.21).
    return this.d.needsKick();
  }
  takeUsed(max = Infinity): Completed<T>[] {
    return this.d.collectUsed(max).map((u) => ({ len: u.len, token: this.tokens[u.id] as T }));
  }
  enableUsedNotify(): boolean {
    return this.d.enableUsedNotify();
  }
  disableUsedNotify(): void {
    this.d.disableUsedNotify();
  }
  dispose(): void {
    this.d.dispose();
  }
  saveState(): GuestRingState {
    const driver = this.d.saveState();
    const tokens = Array.from(this.tokens, (t, id) => {
      if (driver.slotsById[id] === 0) return null;
      if (typeof t !== 'number') throw new TypeError(`packed ring: token of buffer ${id} is not a number; only numeric tokens can be saved`);
      return t;
    });
    return { format: 'packed', driver, tokens };
  }
}

/** Lay a ring of `format` out in guest memory, allocating from `alloc` (guest-physical). */
export function createGuestRing<T>(format: RingFormat, guest: GuestMemory, alloc: Arena, options: GuestRingOptions): GuestRing<T> {
  if (format === 'split') {
    return new SplitGuestRing(SplitRingDriver.create<T>(guest, alloc, { size: options.size, eventIdx: options.eventIdx, indirectDesc: options.indirect }));
  }
  return new PackedGuestRing<T>(new PackedDriver(guest, alloc, { size: options.size, eventIdx: options.eventIdx, indirect: options.indirect }));
}

/**
 * A guest ring in a saved state, over rings already in guest memory (restore after migration).
 * Throws RangeError if the state is out of range or inconsistent.
 */
export function restoreGuestRing(guest: GuestMemory, alloc: Arena, state: unknown): GuestRing<number> {
  const s = state as Partial<GuestRingState> | null;
  if (typeof s !== 'object' || s === null) throw new RangeError('guest ring state is not an object');
  if (s.format === 'split') return new SplitGuestRing(SplitRingDriver.fromState(guest, alloc, s.driver));
  if (s.format !== 'packed') throw new RangeError(`guest ring state: format ${String(s.format)}`);
  const driver = PackedDriver.fromState(guest, alloc, s.driver);
  const raw = s.tokens;
  if (!Array.isArray(raw) || raw.length !== driver.size) throw new RangeError('packed ring state: tokens is not an array of the ring size');
  const live = driver.saveState().slotsById;
  const tokens = raw.map((t, id) => {
    if ((live[id] === 0) !== (t === null)) throw new RangeError(`packed ring state: buffer ${id} has a token without being in flight, or the reverse`);
    if (t !== null && (typeof t !== 'number' || !Number.isSafeInteger(t))) throw new RangeError(`packed ring state: token ${String(t)} of buffer ${id}`);
    return t ?? undefined;
  });
  return new PackedGuestRing<number>(driver, tokens);
}
