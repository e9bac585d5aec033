import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SplitRingDriver } from '../../src/guest/split-ring.js';
import { Arena } from '../../src/memory/arena.js';
import type { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { instantiateKernels } from '../../src/wasm/loader.js';
import { VirtioError } from '../../src/virtio/errors.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, wasmSplitKernels } from '../../src/virtio/split-block.js';
import { SplitQueue } from '../../src/virtio/split-queue.js';
import { splitTwin } from '../../src/virtio/split-twin.js';
import * as S from '../../src/wasm/status.js';
import { compareEngines } from '../fuzz/split.js';
import { DATA_AREA, REGION_A, REGION_B, REGION_BYTES, RING_AREA, hostileMemory } from '../fuzz/split-rings.js';

const CANARY = 0x5a;

interface Case {
  name: string;
  status: number;
  size?: number;
  /** Build the ring with the driver, then break it through guest memory. */
  build(d: SplitRingDriver<number>, dm: DeviceMemory): void;
}

const buf = (address: number, len: number) => ({ gpa: address, len });
const desc = (d: SplitRingDriver<number>, i: number) => gpa(d.descGpa + 16 * i);

/** Write descriptor fields through guest memory (what a hostile guest does). */
function poke(dm: DeviceMemory, at: number, f: { lo?: number; hi?: number; len?: number; flags?: number; next?: number }): void {
  const g = dm.guest;
  if (f.lo !== undefined) g.writeU32(gpa(at), f.lo);
  if (f.hi !== undefined) g.writeU32(gpa(at + 4), f.hi);
  if (f.len !== undefined) g.writeU32(gpa(at + 8), f.len);
  if (f.flags !== undefined) g.writeU16(gpa(at + 12), f.flags);
  if (f.next !== undefined) g.writeU16(gpa(at + 14), f.next);
}

function indirectTable(d: SplitRingDriver<number>, dm: DeviceMemory, head: number): number {
  return dm.guest.readU32(desc(d, head));
}

const CASES: Case[] = [
  { name: 'a direct loop', status: S.ST_LOOP, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8), buf(DATA_AREA, 8)], [], 0);
    poke(dm, desc(d, h + 1), { flags: VIRTQ_DESC_F_NEXT, next: h });
  } },
  { name: 'a loop inside an indirect table', status: S.ST_LOOP, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8), buf(DATA_AREA, 8), buf(DATA_AREA, 8)], [], 0, true);
    poke(dm, indirectTable(d, dm, h) + 32, { flags: VIRTQ_DESC_F_NEXT, next: 1 });
  } },
  { name: 'an indirect chain longer than the queue', status: S.ST_LOOP, size: 4, build: (d) => {
    d.add(Array.from({ length: 5 }, (_, i) => buf(DATA_AREA + 8 * i, 8)), [], 0, true);
  } },
  { name: 'a nested indirect table', status: S.ST_NESTED_INDIRECT, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8)], [buf(DATA_AREA, 8)], 0, true);
    poke(dm, indirectTable(d, dm, h) + 16, { flags: VIRTQ_DESC_F_INDIRECT, lo: indirectTable(d, dm, h), len: 32 });
  } },
  { name: 'an indirect table of length 0', status: S.ST_BAD_INDIRECT_LEN, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8)], [], 0, true);
    poke(dm, desc(d, h), { len: 0 });
  } },
  { name: 'an indirect table of length 24', status: S.ST_BAD_INDIRECT_LEN, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8), buf(DATA_AREA, 8)], [], 0, true);
    poke(dm, desc(d, h), { len: 24 });
  } },
  { name: 'an indirect table outside memory', status: S.ST_OUT_OF_RANGE, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8)], [], 0, true);
    poke(dm, desc(d, h), { lo: REGION_BYTES + 0x1000 });
  } },
  { name: 'a buffer running off its region', status: S.ST_OUT_OF_RANGE, build: (d) => {
    d.add([buf(REGION_BYTES - 8, 16)], [], 0);
  } },
  { name: 'a buffer above 2^53', status: S.ST_OUT_OF_RANGE, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8)], [], 0);
    poke(dm, desc(d, h), { hi: 0x0020_0000 });
  } },
  { name: 'a buffer wrapping past 2^64', status: S.ST_OVERFLOW, build: (d, dm) => {
    const h = d.add([], [buf(DATA_AREA, 8)], 0);
    poke(dm, desc(d, h), { lo: 0xffff_fffc, hi: 0xffff_ffff });
  } },
  { name: 'an avail idx jumping by more than the queue size', status: S.ST_AVAIL_JUMP, build: (d, dm) => {
    d.add([buf(DATA_AREA, 8)], [], 0);
    d.publish();
    dm.guest.writeU16(gpa(d.availGpa + 2), 1 + 17); // one chain was popped already
  } },
  { name: 'an avail idx moving backwards', status: S.ST_AVAIL_JUMP, build: (d, dm) => {
    dm.guest.writeU16(gpa(d.availGpa + 2), 0xffff);
  } },
  { name: 'a head index outside the table', status: S.ST_BAD_INDEX, build: (d, dm) => {
    d.add([buf(DATA_AREA, 8)], [], 0);
    d.publish();
    dm.guest.writeU16(gpa(d.availGpa + 4 + 2), 16); // slot 1: slot 0 was popped already
  } },
  { name: 'a next index outside the table', status: S.ST_BAD_INDEX, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8), buf(DATA_AREA, 8)], [], 0);
    poke(dm, desc(d, h), { next: 16 });
  } },
  { name: 'a next index outside the indirect table', status: S.ST_BAD_INDEX, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8), buf(DATA_AREA, 8)], [], 0, true);
    poke(dm, indirectTable(d, dm, h), { next: 2 });
  } },
  { name: 'a readable buffer after a writable one', status: S.ST_READ_AFTER_WRITE, build: (d, dm) => {
    const h = d.add([buf(DATA_AREA, 8)], [buf(DATA_AREA, 8), buf(DATA_AREA, 8)], 0);
    poke(dm, desc(d, h + 2), { flags: 0 });
  } },
  { name: 'a chain longer than 2^32 bytes', status: S.ST_CHAIN_TOO_LONG, size: 4096, build: (d) => {
    // 2049 buffers of a whole 2 MiB region each: every one is valid, the sum is not.
    d.add(Array.from({ length: 2049 }, (_, i) => buf(i % 2 ? REGION_A : REGION_B, REGION_BYTES)), [], 0, true);
  } },
];

/** Fill everything outside the guest regions that no kernel should write, and snapshot it. */
function canary(dm: DeviceMemory): { check(q: SplitQueue): void } {
  dm.guest.bytes.fill(CANARY, dm.layout.arenaOff + dm.arena.usedBytes() + 4096, dm.layout.ramBase);
  const before = Buffer.from(dm.guest.bytes.subarray(0, dm.layout.ramBase));
  return {
    check(q: SplitQueue) {
      const after = Buffer.from(dm.guest.bytes.subarray(0, dm.layout.ramBase));
      const p = q.placement();
      for (const [off, len] of [[p.blockOff, 64], [p.recordOff, p.recordBytes], [p.usedBufOff, 8 * q.size]]) {
        before.copy(after, off, off, off + len); // the queue's own blocks may change
      }
      assert.ok(after.equals(before), 'memory outside the guest regions changed');
    },
  };
}

for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
  describe(`hostile split rings [${engine}]`, () => {
    for (const c of CASES) {
      it(`${c.name} -> ${S.statusName(c.status)}, the queue breaks, nothing outside the guest changes`, () => {
        const dm = hostileMemory();
        const d = SplitRingDriver.create<number>(dm.guest, new Arena(RING_AREA, DATA_AREA - RING_AREA), { size: c.size ?? 16, eventIdx: true, indirectDesc: true });
        // A good chain first: it pops, and the broken one after it still breaks the queue.
        d.add([buf(DATA_AREA + 512, 4)], [buf(DATA_AREA + 1024, 4)], 99);
        d.publish();
        const q = SplitQueue.fromState(dm, d.initialDeviceState(), engine);
        assert.equal(q.pop().length, 1);
        c.build(d, dm);
        d.publish();
        const mem = canary(dm);
        assert.throws(() => q.pop(), (e: unknown) => e instanceof VirtioError && e.status === c.status);
        assert.equal(q.broken, true);
        assert.equal(q.brokenBy, c.status);
        assert.throws(() => q.pop(), VirtioError, 'a broken queue refuses work');
        mem.check(q);
      });
    }
  });
}

describe('split pop output space', () => {
  for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
    it(`stops before a chain that does not fit, and reports NO_SPACE only when none fits [${engine}]`, () => {
      const dm = hostileMemory();
      const d = SplitRingDriver.create<number>(dm.guest, new Arena(RING_AREA, DATA_AREA - RING_AREA), { size: 8 });
      d.add([buf(DATA_AREA, 8), buf(DATA_AREA + 8, 8)], [], 0); // record: 16 + 2 * 16 bytes
      d.add([buf(DATA_AREA, 8)], [], 1); // 32 bytes
      d.publish();
      const q = SplitQueue.fromState(dm, d.initialDeviceState(), engine);
      const k = engine === 'wasm' ? wasmSplitKernels(instantiateKernels(dm.memory)) : splitTwin(dm.memory);
      const block = q.placement().blockOff;
      const out = dm.arena.alloc(256);
      assert.equal(k.splitPop(block, out, 47, 8), S.ST_NO_SPACE);
      assert.equal(k.splitPop(block, out, 48 + 31, 8), 1);
      assert.equal(q.state().nextAvail, 1, 'the chain that did not fit stays in the ring');
      assert.equal(k.splitPop(block, out, 32, 8), 1);
      assert.equal(dm.guest.view.getUint16(out, true), 2, 'the second chain, whose head is descriptor 2');
      assert.equal(k.splitPop(block, out, 32, 8), 0);
    });
  }
});

describe('split kernels: Wasm agrees with the TypeScript twin', () => {
  it('on random, corrupted rings: results, records, used ring and queue block', () => {
    const dm = hostileMemory();
    const exports = instantiateKernels(dm.memory);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (ringSeed, opsSeed) => {
        const diff = compareEngines(dm, exports, ringSeed, opsSeed);
        assert.equal(diff, null);
      }),
      { numRuns: 400 },
    );
  });

  it('on well-formed rings driven through the driver with writes flagged', () => {
    const dm = hostileMemory();
    const d = SplitRingDriver.create<number>(dm.guest, new Arena(RING_AREA, DATA_AREA - RING_AREA), { size: 64, indirectDesc: true });
    let added = 0;
    while (d.add([buf(DATA_AREA + added, 3)], [buf(DATA_AREA, 0), buf(REGION_B + added, 5)], added, added % 2 === 0) >= 0) added++;
    d.publish();
    const recs = (['wasm', 'ts'] as KernelEngine[]).map((engine) => {
      const q = SplitQueue.fromState(dm, d.initialDeviceState(), engine);
      const chains = q.pop();
      const last = chains[chains.length - 1];
      const bytes = Buffer.from(dm.guest.bytes.subarray(chains[0].recordOff, last.recordOff + last.recordBytes));
      q.dispose();
      return { n: chains.length, bytes: bytes.toString('hex'), first: chains[0].segment(1) };
    });
    assert.equal(added, 32); // alternately 1 (indirect) and 3 ring descriptors
    assert.equal(recs[0].n, added);
    assert.deepEqual(recs[0], recs[1]);
    assert.deepEqual({ gpa: recs[0].first.gpa, len: recs[0].first.len }, { gpa: REGION_B, len: 5 });
  });
});
