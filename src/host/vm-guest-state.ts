// What a VM's guest holds outside the device, shared by the two ways a VM runs (vm.ts, its device
// in the guest's thread; src/backend/durable-vm.ts, its device in a pool worker): the guest RAM
// layout both use, and the guest state a migration carries — the driver library's state and the
// data buffer allocator's, tagged with one kind, so a VM of either sort restores as either sort.
import { GuestError, GuestErrorCode } from '../guest/rdma/errors.js';
import { decodeGuestState, encodeGuestState } from '../guest/rdma/state-codec.js';

/** Guest-physical layout: rings and the driver's command buffers low, data buffers above. */
export const DRIVER_AREA_GPA = 0x10000;
export const DEFAULT_DRIVER_BYTES = 4 * 1024 * 1024;
const VM_GUEST_STATE_KIND = 'vrdma-vm-guest';

export function encodeVmGuestState(driver: unknown, data: unknown): Uint8Array {
  return encodeGuestState({ kind: VM_GUEST_STATE_KIND, driver, data });
}

/** The VM's guest state blob: the kind tag, then the driver's and the allocator's plain states. */
export function decodeVmGuestState(bytes: Uint8Array): { driver: unknown; data: unknown } {
  const s = decodeGuestState(bytes) as { kind?: unknown; driver?: unknown; data?: unknown } | null;
  if (typeof s !== 'object' || s === null || s.kind !== VM_GUEST_STATE_KIND) throw new GuestError(GuestErrorCode.BadState, 'not a VM guest state');
  return { driver: s.driver, data: s.data };
}
