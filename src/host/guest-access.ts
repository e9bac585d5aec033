// The application's (vCPU's) access to its VM's RAM, as the workload sees it. Every write the
// guest itself makes goes through the VM's logged write path (Vm.writeBuffer marks the vCPU dirty
// log, R4), so pre-copy carries it; reads are plain views.
import type { GuestAccess } from '../workload/workload.js';

/** The application's access to a VM's RAM (a Vm, or a DurableVm), writes through its logged path. */
export function vmGuestAccess(vm: { writeBuffer(at: number, src: Uint8Array): void; bytes(at: number, len: number): Uint8Array }): GuestAccess {
  return {
    write(gpa: number, bytes: Uint8Array): void {
      vm.writeBuffer(gpa, bytes);
    },
    view(gpa: number, lenBytes: number): Uint8Array {
      return vm.bytes(gpa, lenBytes);
    },
  };
}
