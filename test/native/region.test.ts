import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeviceMemory, REGION_TABLE_BYTES, RegionTable, gpa as toGpa } from '../../src/memory/index.js';
import { instantiateKernels } from '../../src/wasm/loader.js';
import { ST_OUT_OF_RANGE, ST_OVERFLOW } from '../../src/wasm/status.js';
import { withNative } from './with-native.js';

const MiB = 1024 * 1024;

type Translate = (table: number, gpa: number, len: number) => number;

interface Fixture {
  dm: DeviceMemory;
  bytes: Uint8Array;
  wasm: Translate;
}

function fixture(): Fixture {
  const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
  const wasm = instantiateKernels(dm.memory).regionTranslate as Translate;
  return { dm, bytes: new Uint8Array(dm.memory.buffer), wasm };
}

const regionArb = fc.record({
  gpa: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 2 ** 33 })),
  size: fc.integer({ min: 1, max: 2 ** 32 }),
  hostOffset: fc.integer({ min: 0, max: 2 ** 32 }),
});

/** Fill a fresh table with the regions that do not overlap; returns the ones kept. */
function fillTable(table: RegionTable, regions: { gpa: number; size: number; hostOffset: number }[]): { gpa: number; size: number }[] {
  table.init();
  const kept = [];
  for (const r of regions) {
    try {
      table.insert({ gpa: toGpa(r.gpa), size: r.size, hostOffset: r.hostOffset });
      kept.push(r);
    } catch {
      // overlaps one already in: skipped, as the control path would refuse it
    }
  }
  return kept;
}

/** Addresses near every region edge, where off-by-one errors live, plus random ones. */
function probes(regions: { gpa: number; size: number }[], extra: number[]): number[] {
  const out = [...extra];
  for (const r of regions) out.push(r.gpa - 1, r.gpa, r.gpa + 1, r.gpa + r.size - 1, r.gpa + r.size, r.gpa + r.size + 1);
  return out.filter((a) => Number.isSafeInteger(a) && a >= 0);
}

describe('native region lookup', () => {
  it('equals the TypeScript twin and the Wasm kernel on random tables and addresses', withNative((native) => {
    const { dm, bytes, wasm } = fixture();
    const tableOff = dm.layout.regionTableOff;
    const table = new RegionTable(dm.memory.buffer, tableOff);
    fc.assert(
      fc.property(
        fc.array(regionArb, { maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { maxLength: 20 }),
        fc.array(fc.oneof(fc.constantFrom(0, 1, 2, 8, 4096), fc.integer({ min: 0, max: 2 ** 33 })), { minLength: 1, maxLength: 5 }),
        (regions, randomAddrs, lens) => {
          const kept = fillTable(table, regions);
          for (const address of probes(kept, randomAddrs)) {
            for (const len of lens) {
              const want = table.lookup(address, len);
              assert.equal(native.regionLookup(bytes, tableOff, address, len), want, `gpa ${address} len ${len}`);
              assert.equal(wasm(tableOff, address, len), want, `wasm gpa ${address} len ${len}`);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  }));

  it('equals the Wasm kernel on 64-bit edges: regions near 2^64, overflowing ends, bad doubles', withNative((native) => {
    const { dm, bytes, wasm } = fixture();
    const tableOff = dm.arena.alloc(REGION_TABLE_BYTES, 16);
    const view = new DataView(dm.memory.buffer);
    // Raw entries the TypeScript table cannot hold (it stops at 2^53): one ends at 2^64 - 4096.
    const entries: [bigint, bigint, bigint][] = [
      [0n, 1n << 20n, 4096n],
      [1n << 62n, 1n << 40n, 8192n],
      [(1n << 64n) - (1n << 32n), (1n << 32n) - 4096n, 1n << 30n],
    ];
    view.setUint32(tableOff, entries.length, true);
    entries.forEach(([g, s, h], i) => {
      const e = tableOff + 16 + i * 32;
      view.setBigUint64(e, g, true);
      view.setBigUint64(e + 8, s, true);
      view.setBigUint64(e + 16, h, true);
    });
    const doubles = [0, 1, 4095, 2 ** 20, 2 ** 53, 2 ** 62, 2 ** 62 + 2 ** 39, 2 ** 63, 1.8e19, 1.8446744073709552e19 - 2 ** 33,
      1.8e19 + 1e15, -1, -0, NaN, Infinity, 0.5, 2 ** 64];
    for (const g of doubles) {
      for (const l of doubles) assert.equal(Object.is(native.regionLookup(bytes, tableOff, g, l), wasm(tableOff, g, l)), true, `gpa ${g} len ${l}`);
    }
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1.9e19, noNaN: true }), fc.double({ min: 0, max: 1.9e19, noNaN: true }), (g, l) => {
        assert.equal(native.regionLookup(bytes, tableOff, g, l), wasm(tableOff, g, l));
      }),
    );
    assert.equal(native.regionLookup(bytes, tableOff, -1, 0), ST_OVERFLOW);
  }));

  it('regionLookupBatch gives the per-call results', withNative((native) => {
    const { dm, bytes } = fixture();
    const tableOff = dm.layout.regionTableOff;
    dm.addRegion(0, 1 * MiB);
    dm.addRegion(0x1_0000_0000, 1 * MiB);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 33 }), fc.integer({ min: 0, max: 2 * MiB })), { maxLength: 64 }), (pairs) => {
        const gpas = Float64Array.from(pairs, ([g]) => g);
        const lens = Float64Array.from(pairs, ([, l]) => l);
        const out = new Float64Array(pairs.length);
        assert.equal(native.regionLookupBatch(bytes, tableOff, gpas, lens, out), pairs.length);
        pairs.forEach(([g, l], i) => assert.equal(out[i], dm.guest.regions.lookup(g, l)));
      }),
    );
    assert.throws(() => native.regionLookupBatch(bytes, tableOff, new Float64Array(2), new Float64Array(1), new Float64Array(2)), RangeError);
    assert.throws(() => native.regionLookupBatch(bytes, tableOff, new Float64Array(2), new Float64Array(2), new Float32Array(2) as unknown as Float64Array), TypeError);
  }));

  it('refuses a table that runs past the view instead of reading outside it', withNative((native) => {
    const { dm, bytes } = fixture();
    const tableOff = dm.layout.regionTableOff;
    assert.equal(native.regionLookup(bytes, tableOff, 0, 1), ST_OUT_OF_RANGE);
    const small = new Uint8Array(dm.memory.buffer, 0, tableOff + 16 + 32);
    new DataView(dm.memory.buffer).setUint32(tableOff, 2, true);
    assert.throws(() => native.regionLookup(small, tableOff, 0, 1), RangeError);
    assert.throws(() => native.regionLookup(small, small.length - 8, 0, 1), RangeError);
  }));
});
