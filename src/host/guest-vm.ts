// The guest side a VM has whichever thread runs its device (vm.ts: the guest's own thread;
// src/backend/durable-vm.ts: a backend pool's worker): the guest RAM layout, the driver library,
// the data buffer allocator and the application's logged access to its buffers, and the guest
// state a migration carries — the driver's and the allocator's states under one kind tag, so a
// VM of either sort restores as either sort.
import type { RdmaGuest } from '../guest/rdma/device.js';
import { GuestError, GuestErrorCode } from '../guest/rdma/errors.js';
import { decodeGuestState, encodeGuestState } from '../guest/rdma/state-codec.js';
import type { Arena } from '../memory/arena.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import { gpa } from '../memory/gpa.js';
import type { GuestMemory } from '../memory/guest-memory.js';

/** Guest-physical layout: rings and the driver's command buffers low, data buffers above. */
export const DRIVER_AREA_GPA = 0x10000;
export const DEFAULT_DRIVER_BYTES = 4 * 1024 * 1024;
const VM_GUEST_STATE_KIND = 'vrdma-vm-guest';

/** The VM's guest state blob: the kind tag, then the driver's and the allocator's plain states. */
export function decodeVmGuestState(bytes: Uint8Array): { driver: unknown; data: unknown } {
  const s = decodeGuestState(bytes) as { kind?: unknown; driver?: unknown; data?: unknown } | null;
  if (typeof s !== 'object' || s === null || s.kind !== VM_GUEST_STATE_KIND) throw new GuestError(GuestErrorCode.BadState, 'not a VM guest state');
  return { driver: s.driver, data: s.data };
}

export abstract class GuestVm {
  /** Guest RAM (and the device's arena). */
  abstract readonly dm: DeviceMemory;

  protected constructor(
    /** The guest's driver library, opened on the device. */
    readonly guest: RdmaGuest,
    /** Allocator of data buffers in guest RAM (GPAs). */
    protected readonly data: Arena,
    /** Guest RAM as the guest's vCPU writes it: every write is marked in the VM's CPU dirty log. */
    readonly cpuMemory: GuestMemory,
  ) {}

  /**
   * What the guest holds outside the device, for migration: the driver library's state and the
   * VM's buffer allocator (a real guest keeps both in its own RAM and registers). Take it with
   * the guest stopped, in the same turn as the device's state.
   */
  saveGuestState(): Uint8Array {
    return encodeGuestState({ kind: VM_GUEST_STATE_KIND, driver: this.guest.saveState(), data: this.data.saveState() });
  }

  /** A data buffer of `bytes` in guest RAM (zeroed), returned as its GPA. */
  allocBuffer(bytes: number, align = 64): number {
    const at = this.data.alloc(bytes, align);
    this.cpuMemory.fill(gpa(at), bytes, 0);
    return at;
  }

  /** The application writes `src` into guest RAM at `at` (marked in the CPU log). */
  writeBuffer(at: number, src: Uint8Array): void {
    this.cpuMemory.write(gpa(at), src);
  }

  /** The application fills `len` bytes at `at` with `value` (marked in the CPU log). */
  fillBuffer(at: number, len: number, value: number): void {
    this.cpuMemory.fill(gpa(at), len, value);
  }

  releaseBuffer(at: number): void {
    this.data.release(at);
  }

  /**
   * A live view of guest RAM at `at` (the device writes into the same bytes), for reading: writes
   * through it escape the dirty log; use writeBuffer/fillBuffer to write.
   */
  bytes(at: number, len: number): Uint8Array {
    return this.dm.guest.slice(gpa(at), len);
  }
}
