// The guest library's view of one virtqueue: the format-agnostic guest ring (src/guest/ring.ts,
// split or packed as negotiated) plus the addresses the transport's queue setup takes.
import type { QueueConfig } from '../../device/queue-factory.js';
import type { Arena } from '../../memory/arena.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { type GuestBuffer, type GuestRing as AnyRing, type GuestRingState, type RingFormat, createGuestRing as createAnyRing, restoreGuestRing as restoreAnyRing } from '../ring.js';

export type { GuestBuffer, GuestRingState, RingFormat };

export interface GuestRing {
  readonly format: RingFormat;
  readonly size: number;
  /** Size and ring addresses as the transport's queue setup takes them (queue_desc/driver/device). */
  readonly config: QueueConfig;
  /** Add a chain; false if the ring has no room. `token` comes back with the used buffer. */
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: number, indirect?: boolean): boolean;
  /** Make added chains available; true if the device wants a kick. */
  publish(): boolean;
  collect(max?: number): { token: number; len: number }[];
  enableCallbacks(): boolean;
  disableCallbacks(): void;
  dispose(): void;
  saveState(): GuestRingState;
}

export interface RingOptions {
  size: number;
  eventIdx: boolean;
  indirectDesc: boolean;
}

class RdmaRing implements GuestRing {
  readonly config: QueueConfig;

  constructor(private readonly ring: AnyRing<number>) {
    const s = ring.deviceState();
    this.config = s.format === 'split'
      ? { size: s.size, descGpa: s.descGpa, driverGpa: s.availGpa, deviceGpa: s.usedGpa }
      : { size: s.size, descGpa: s.descGpa, driverGpa: s.driverEventGpa, deviceGpa: s.deviceEventGpa };
  }

  get format(): RingFormat {
    return this.ring.format;
  }
  get size(): number {
    return this.ring.size;
  }
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: number, indirect = false): boolean {
    return this.ring.offer(readable, writable, token, indirect);
  }
  publish(): boolean {
    return this.ring.publish();
  }
  collect(max?: number): { token: number; len: number }[] {
    return this.ring.takeUsed(max);
  }
  enableCallbacks(): boolean {
    return this.ring.enableUsedNotify();
  }
  disableCallbacks(): void {
    this.ring.disableUsedNotify();
  }
  dispose(): void {
    this.ring.dispose();
  }
  saveState(): GuestRingState {
    return this.ring.saveState();
  }
}

export function createGuestRing(format: RingFormat, guest: GuestMemory, alloc: Arena, options: RingOptions): GuestRing {
  return new RdmaRing(createAnyRing<number>(format, guest, alloc, { size: options.size, eventIdx: options.eventIdx, indirect: options.indirectDesc }));
}

/** A ring in a saved state over rings already in guest memory (RangeError if the state is bad). */
export function restoreGuestRing(guest: GuestMemory, alloc: Arena, state: unknown): GuestRing {
  return new RdmaRing(restoreAnyRing(guest, alloc, state));
}

/** Smallest power of two >= n (at least 1), capped at `max`. */
export function ringSizeFor(n: number, max: number): number {
  let size = 1;
  while (size < n && size < max) size *= 2;
  return size;
}
