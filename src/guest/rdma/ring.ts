// The guest library's view of one virtqueue, whatever its format: add a chain, publish, collect
// used buffers, ask for or suppress interrupts. The split format drives SplitRingDriver; the packed
// format plugs in the same way once its guest driver is available (VIRTIO_F_RING_PACKED).
import type { Arena } from '../../memory/arena.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { QueueConfig } from '../../device/queue-factory.js';
import { type GuestBuffer, SplitRingDriver } from '../split-ring.js';
import { GuestError, GuestErrorCode } from './errors.js';

export type { GuestBuffer };

export interface GuestRing {
  readonly size: number;
  /** Size and ring addresses as the transport's queue setup takes them. */
  readonly config: QueueConfig;
  readonly numFree: number;
  /** Add a chain; false if the ring has no room. `token` comes back with the used buffer. */
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: number, indirect?: boolean): boolean;
  /** Make added chains available; true if the device wants a kick. */
  publish(): boolean;
  collect(max?: number): { token: number; len: number }[];
  enableCallbacks(): boolean;
  disableCallbacks(): void;
  dispose(): void;
}

export interface RingOptions {
  size: number;
  eventIdx: boolean;
  indirectDesc: boolean;
}

class SplitGuestRing implements GuestRing {
  readonly config: QueueConfig;

  constructor(private readonly driver: SplitRingDriver<number>) {
    this.config = { size: driver.size, descGpa: driver.descGpa, driverGpa: driver.availGpa, deviceGpa: driver.usedGpa };
  }

  get size(): number {
    return this.driver.size;
  }
  get numFree(): number {
    return this.driver.numFree;
  }
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], token: number, indirect = false): boolean {
    return this.driver.add(readable, writable, token, indirect) >= 0;
  }
  publish(): boolean {
    return this.driver.publish();
  }
  collect(max?: number): { token: number; len: number }[] {
    return this.driver.collect(max).map((u) => ({ token: u.token, len: u.len }));
  }
  enableCallbacks(): boolean {
    return this.driver.enableCallbacks();
  }
  disableCallbacks(): void {
    this.driver.disableCallbacks();
  }
  dispose(): void {
    this.driver.dispose();
  }
}

export function createGuestRing(format: 'split' | 'packed', guest: GuestMemory, alloc: Arena, options: RingOptions): GuestRing {
  if (format === 'packed') throw new GuestError(GuestErrorCode.Unsupported, 'the packed guest ring driver is not available in this build');
  return new SplitGuestRing(SplitRingDriver.create<number>(guest, alloc, options));
}

/** Smallest power of two >= n (at least 1). */
export function ringSizeFor(n: number, max: number): number {
  let size = 1;
  while (size < n && size < max) size *= 2;
  return size;
}
