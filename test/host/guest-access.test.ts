// The workload's writes to guest RAM (vmGuestAccess) go through the VM's vCPU dirty log (R4), so
// pre-copy carries them; the device's log sees none of them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vmGuestAccess } from '../../src/host/guest-access.js';
import { Vm } from '../../src/host/vm.js';

describe('the workload\'s guest access', () => {
  it('marks every page an application write touches in the vCPU log', async () => {
    const vm = await Vm.open({ ip: '127.0.27.99', ramBytes: 16 << 20 });
    try {
      const at = vm.allocBuffer(3 * 4096, 4096);
      const access = vmGuestAccess(vm);
      vm.cpuLog.start();
      vm.dirtyLog.start();
      // 4097 bytes from 100 bytes before a page boundary: two pages.
      const bytes = new Uint8Array(4097).fill(0xa5);
      access.write(at + 4096 - 100, bytes);
      assert.deepEqual([...vm.cpuLog.harvest()], [at / 4096, at / 4096 + 1]);
      assert.deepEqual([...vm.dirtyLog.harvest()], []);
      assert.deepEqual(access.view(at + 4096 - 100, 4097), bytes);
    } finally {
      await vm.close();
    }
  });
});
