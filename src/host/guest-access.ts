// The application's (vCPU's) access to its VM's RAM, as the workload sees it. Every write the
// guest itself makes goes through `write` here, the one place that will log it for pre-copy once
// the VM exposes its vCPU dirty log.
import type { GuestAccess } from '../workload/workload.js';
import type { Vm } from './vm.js';

export function vmGuestAccess(vm: Vm): GuestAccess {
  return {
    write(gpa: number, bytes: Uint8Array): void {
      vm.bytes(gpa, bytes.length).set(bytes);
    },
    view(gpa: number, lenBytes: number): Uint8Array {
      return vm.bytes(gpa, lenBytes);
    },
  };
}
