// DeviceMemory.attach: a second view of a creator's shared memory sees its regions (now and
// later) and its bytes, cannot change the memory map, and refuses a memory that is not shared
// or a layout that does not describe it (MemoryError BAD_STATE).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceMemory, MemoryError, MemoryErrorCode, computeLayout, gpa } from '../../src/memory/index.js';

const MiB = 1024 * 1024;

function creator(): DeviceMemory {
  const dm = DeviceMemory.create({ ramBytes: 8 * MiB, arenaBytes: 64 * 1024 });
  dm.addRegion(0, 2 * MiB);
  dm.addRegion(0x1_0000_0000, 2 * MiB);
  return dm;
}

const badState = (e: unknown) => e instanceof MemoryError && e.code === MemoryErrorCode.BadState;

describe('device memory attach', () => {
  it('sees the creator\'s regions and bytes, both ways, and regions plugged later', () => {
    const dm = creator();
    const view = DeviceMemory.attach(dm.memory, { ...dm.layout });
    assert.equal(view.guest.translate(gpa(0x1_0000_0000 + 100), 8), dm.guest.translate(gpa(0x1_0000_0000 + 100), 8));
    dm.guest.writeU32(gpa(0x1000), 0xdeadbeef);
    assert.equal(view.guest.readU32(gpa(0x1000)), 0xdeadbeef);
    view.guest.write(gpa(0x1_0000_0000 + 2 * MiB - 3), Uint8Array.of(1, 2, 3));
    assert.deepEqual(dm.guest.slice(gpa(0x1_0000_0000 + 2 * MiB - 3), 3), Uint8Array.of(1, 2, 3));
    assert.throws(() => view.guest.translate(gpa(2 * MiB), 1), MemoryError, 'the hole is a hole in the view too');
    dm.addRegion(4 * MiB, 2 * MiB);
    assert.equal(view.guest.translate(gpa(4 * MiB), 4096), dm.guest.translate(gpa(4 * MiB), 4096));
    dm.removeRegion(0);
    assert.throws(() => view.guest.translate(gpa(0x1000), 4), MemoryError, 'an unplugged region is gone from the view');
  });

  it('cannot plug or unplug regions', () => {
    const dm = creator();
    const view = DeviceMemory.attach(dm.memory, dm.layout);
    assert.throws(() => view.addRegion(4 * MiB, 2 * MiB), MemoryError);
    assert.throws(() => view.removeRegion(0), MemoryError);
    assert.equal(dm.guest.regions.count, 2, 'the memory map is unchanged');
    assert.equal(view.guest.readU8(gpa(0)), 0, 'region 0 is still there');
    dm.addRegion(4 * MiB, 2 * MiB);
  });

  it('refuses a memory that is not a shared WebAssembly.Memory', () => {
    const dm = creator();
    const notShared = new WebAssembly.Memory({ initial: dm.layout.totalBytes / 65536 });
    assert.throws(() => DeviceMemory.attach(notShared, dm.layout), badState);
    for (const bad of [null, {}, dm.memory.buffer, { buffer: dm.memory.buffer }]) {
      assert.throws(() => DeviceMemory.attach(bad as unknown as WebAssembly.Memory, dm.layout), badState);
    }
  });

  it('refuses a layout that does not describe the memory', () => {
    const dm = creator();
    const L = dm.layout;
    const wrong = [
      { ...L, arenaOff: L.arenaOff + 4096 },
      { ...L, regionTableOff: L.regionTableOff + 8 },
      { ...L, ramBase: L.ramBase + 2 * MiB },
      { ...L, totalBytes: L.totalBytes - 65536 },
      { ...L, arenaBytes: L.arenaBytes + 4 * MiB },
      { ...L, ramBytes: L.ramBytes - 2 * MiB },
      computeLayout({ ramBytes: 64 * MiB, arenaBytes: L.arenaBytes }), // consistent, but bigger than the memory
    ];
    for (const [i, layout] of wrong.entries()) assert.throws(() => DeviceMemory.attach(dm.memory, layout), badState, `layout ${i}`);
  });
});
