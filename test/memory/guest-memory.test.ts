import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeviceMemory, MemoryError, MemoryErrorCode, gpa } from '../../src/memory/index.js';
import { instantiateKernels } from '../../src/wasm/loader.js';
import { ST_OUT_OF_RANGE, ST_OVERFLOW } from '../../src/wasm/status.js';

const MiB = 1024 * 1024;

function device(): DeviceMemory {
  const dm = DeviceMemory.create({ ramBytes: 64 * MiB, arenaBytes: 1 * MiB });
  dm.addRegion(0, 16 * MiB);
  dm.addRegion(0x1_0000_0000, 8 * MiB); // above 4 GiB, like a VM's high memory
  return dm;
}

describe('guest memory', () => {
  it('reads back what it wrote, in every region', () => {
    const dm = device();
    const data = Uint8Array.from({ length: 100 }, (_, i) => i);
    dm.guest.write(gpa(0x1000), data);
    dm.guest.write(gpa(0x1_0000_0000 + 8 * MiB - 100), data);
    const back = new Uint8Array(100);
    dm.guest.read(gpa(0x1000), back);
    assert.deepEqual(back, data);
    dm.guest.read(gpa(0x1_0000_0000 + 8 * MiB - 100), back);
    assert.deepEqual(back, data);
    dm.guest.writeU64(gpa(0x2000), 2 ** 40 + 7);
    assert.equal(dm.guest.readU64(gpa(0x2000)), 2 ** 40 + 7);
  });

  it('refuses ranges that leave a region, cross a hole or overflow', () => {
    const dm = device();
    const refuse = (address: number, len: number, code: MemoryErrorCode) =>
      assert.throws(() => dm.guest.translate(gpa(address), len), (e: unknown) => e instanceof MemoryError && e.code === code);
    refuse(16 * MiB - 4, 8, MemoryErrorCode.OutOfRange); // runs off the end of region 0
    refuse(16 * MiB, 1, MemoryErrorCode.OutOfRange); // the hole
    refuse(0x1_0000_0000 - 1, 2, MemoryErrorCode.OutOfRange); // straddles into region 1
    refuse(Number.MAX_SAFE_INTEGER, 2, MemoryErrorCode.OutOfRange);
    assert.throws(() => dm.guest.translate(gpa(0), -1), MemoryError);
    assert.equal(dm.guest.translate(gpa(16 * MiB), 0), dm.guest.translate(gpa(0), 0) + 16 * MiB);
  });

  it('hotplug: removed regions become unreachable, added ones reachable and zeroed', () => {
    const dm = device();
    dm.guest.fill(gpa(0x1_0000_0000), 4096, 0xaa);
    dm.removeRegion(0x1_0000_0000);
    assert.throws(() => dm.guest.translate(gpa(0x1_0000_0000), 1), MemoryError);
    dm.addRegion(0x1_0000_0000, 4 * MiB);
    assert.equal(dm.guest.readU8(gpa(0x1_0000_0000)), 0);
    assert.throws(() => dm.addRegion(0x1_0000_0000 + 2 * MiB, 4 * MiB), (e: unknown) => e instanceof MemoryError && e.code === MemoryErrorCode.RegionConflict);
  });

  it('holds at least 32 regions', () => {
    const dm = DeviceMemory.create({ ramBytes: 80 * MiB, arenaBytes: 1 * MiB });
    for (let i = 0; i < 32; i++) dm.addRegion(i * 4 * MiB, 2 * MiB);
    assert.equal(dm.guest.regions.count, 32);
    for (let i = 0; i < 32; i++) dm.guest.writeU32(gpa(i * 4 * MiB + 2 * MiB - 4), i);
    for (let i = 0; i < 32; i++) assert.equal(dm.guest.readU32(gpa(i * 4 * MiB + 2 * MiB - 4)), i);
  });

  it('refuses a guest too large for wasm32, naming memory64', () => {
    assert.throws(() => DeviceMemory.create({ ramBytes: 4 * 1024 * MiB }), /memory64/);
  });
});

describe('region lookup kernel', () => {
  it('agrees with its TypeScript twin on random regions and ranges', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ page: fc.integer({ min: 0, max: 1 << 20 }), pages: fc.integer({ min: 1, max: 64 }) }), { maxLength: 20 }),
        fc.array(fc.record({ address: fc.oneof(fc.integer({ min: 0, max: 2 ** 34 }), fc.constant(Number.MAX_SAFE_INTEGER)), len: fc.integer({ min: 0, max: 2 ** 22 }) }), { minLength: 1, maxLength: 50 }),
        (regions, probes) => {
          const dm = DeviceMemory.create({ ramBytes: 20 * 64 * 4096 + 40 * MiB, arenaBytes: 64 * 1024 });
          for (const r of regions) {
            try {
              dm.addRegion(r.page * 4096 * 16, r.pages * 4096);
            } catch (e) {
              assert.ok(e instanceof MemoryError);
            }
          }
          const kernels = instantiateKernels(dm.memory);
          const translate = kernels.regionTranslate as (t: number, g: number, l: number) => number;
          for (const { address, len } of probes) {
            const twin = dm.guest.regions.lookup(address, len);
            assert.equal(translate(dm.layout.regionTableOff, address, len), twin);
          }
          // Probes just inside and just outside each region.
          for (const r of dm.guest.regions.list()) {
            for (const [a, l] of [[r.gpa, r.size], [r.gpa, r.size + 1], [r.gpa + r.size - 1, 1], [r.gpa - 1, 2], [r.gpa + r.size, 0]]) {
              assert.equal(translate(dm.layout.regionTableOff, a, l), dm.guest.regions.lookup(a, l));
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reports overflow and out-of-range codes', () => {
    const dm = device();
    const kernels = instantiateKernels(dm.memory);
    const translate = kernels.regionTranslate as (t: number, g: number, l: number) => number;
    assert.equal(translate(dm.layout.regionTableOff, -1, 1), ST_OVERFLOW);
    assert.equal(translate(dm.layout.regionTableOff, 16 * MiB, 1), ST_OUT_OF_RANGE);
  });
});
