import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { nativeStatus } from '../../src/native/addon.js';
import { listRdmaDevices } from '../../src/native/rdma-devices.js';
import { withNative } from './with-native.js';

/** The kernel's own list of RDMA devices: the truth the probe must agree with. */
function kernelRdmaDevices(): string[] {
  const dir = '/sys/class/infiniband';
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

describe('RDMA device probe', () => {
  it('lists exactly the devices libibverbs sees, or none with a reason', withNative((native) => {
    const list = native.listRdmaDevices();
    assert.equal(typeof list.verbsCompiledIn, 'boolean');
    if (!list.verbsCompiledIn) {
      assert.deepEqual(list.devices, []);
      assert.match(list.reason ?? '', /no RDMA device support compiled in/);
      return;
    }
    // Built against libibverbs: its list is the kernel's (sysfs) list, never an invented one.
    assert.deepEqual(list.devices.map((d) => d.name).sort(), kernelRdmaDevices());
    if (list.devices.length === 0) assert.match(list.reason ?? '', /found no RDMA devices|could not list RDMA devices/);
    else assert.equal(list.reason, undefined);
    for (const d of list.devices) assert.match(d.guid, /^[0-9a-f]{16}$/);
  }));

  it('listRdmaDevices works with or without the addon and explains an empty list', () => {
    const list = listRdmaDevices();
    if (list.devices.length === 0) assert.ok((list.reason ?? '').length > 20, JSON.stringify(list));
    if (!nativeStatus().available) {
      assert.equal(list.verbsCompiledIn, false);
      assert.match(list.reason ?? '', /^native addon /);
    }
  });
});
