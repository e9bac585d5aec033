// All-memory MRs (R2): iova == gpa, holes read as zeros and swallow writes, hotplug follows.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { type DeviceMemory, gpa } from '../../../src/memory/index.js';
import { MR_LOCAL_WRITE, MR_REMOTE_ATOMIC, MR_REMOTE_READ, MR_REMOTE_WRITE, MrTranslator, PageTable } from '../../../src/nic/mr/index.js';
import { ENGINES, MiB, device, failure, pattern, readThrough, segments, translators, writeThrough } from './fixtures.js';

const ALL = MR_LOCAL_WRITE | MR_REMOTE_WRITE | MR_REMOTE_READ | MR_REMOTE_ATOMIC;

/** A digest of every guest region's bytes, to prove nothing in guest memory changed. */
function guestDigest(dm: DeviceMemory): string {
  const hash = createHash('sha256');
  for (const r of dm.guest.regions.list()) hash.update(dm.guest.slice(r.gpa, r.size));
  return hash.digest('hex');
}

/** Memory with holes: [0, 2 MiB), hole, [4 MiB, 5 MiB), hole, [8 MiB, 12 MiB). */
function holey(): DeviceMemory {
  const dm = device(32 * MiB);
  dm.addRegion(0, 2 * MiB);
  dm.addRegion(4 * MiB, 1 * MiB);
  dm.addRegion(8 * MiB, 4 * MiB);
  for (const r of dm.guest.regions.list()) dm.guest.fill(r.gpa, r.size, 0x5a);
  return dm;
}

for (const engine of ENGINES) {
  for (const pageShift of [12, 21] as const) {
    describe(`all-memory MR, ${2 ** pageShift / 1024} KiB pages [${engine}]`, () => {
      it('covers [0, end of the highest region) with iova == gpa', () => {
        const dm = holey();
        const table = PageTable.allMemory(dm, ALL, { pageShift });
        assert.equal(table.iova, 0);
        assert.equal(table.length, 12 * MiB);
        const tr = translators(dm, 2048)[engine];
        assert.deepEqual(segments(tr.translate(table, 4 * MiB + 100, 5000, MR_REMOTE_READ)), [
          { offset: dm.guest.translate(gpa(4 * MiB + 100), 5000), len: 5000, gpa: 4 * MiB + 100 },
        ]);
        assert.equal(failure(tr.translate(table, 12 * MiB - 1, 2, 0)), 'OUT_OF_RANGE');
        assert.equal(failure(tr.translate(table, 0, 1, 16)), 'ACCESS');
      });

      it('reads of holes give zeros; writes vanish into the sink, never into guest memory', () => {
        const dm = holey();
        const table = PageTable.allMemory(dm, ALL, { pageShift });
        const tr = translators(dm, 2048)[engine];
        const before = guestDigest(dm);
        // [1 MiB, 9 MiB): region, hole, region, hole, region.
        const start = 1 * MiB + 123;
        const len = 8 * MiB;
        const writeSegs = segments(tr.translate(table, start, len, MR_REMOTE_WRITE));
        const expectNull = writeSegs.filter((s) => s.gpa === null);
        assert.ok(expectNull.length >= 2);
        for (const s of expectNull) {
          assert.ok(s.offset >= table.sinkPageOff && s.offset + s.len <= table.sinkPageOff + 2 ** pageShift, 'hole writes go to the sink page');
        }
        const data = pattern(len, 9);
        writeThrough(dm, writeSegs, data);
        // Only the bytes in real memory changed, and they hold the data.
        assert.equal(dm.guest.readU8(gpa(start)), data[0]);
        assert.equal(dm.guest.readU8(gpa(4 * MiB)), data[4 * MiB - start]);
        assert.equal(dm.guest.readU8(gpa(8 * MiB + 5)), data[8 * MiB + 5 - start]);
        assert.equal(dm.guest.readU8(gpa(12 * MiB - 1)), 0x5a);
        // Reads see the written memory and zeros in the holes, even after the sink was written.
        const readSegs = segments(tr.translate(table, start, len, MR_REMOTE_READ));
        for (const s of readSegs.filter((x) => x.gpa === null)) {
          assert.ok(s.offset >= table.zeroPageOff && s.offset + s.len <= table.zeroPageOff + 2 ** pageShift);
        }
        const seen = readThrough(dm, readSegs);
        const expected = data.slice();
        expected.fill(0, 2 * MiB - start, 4 * MiB - start);
        expected.fill(0, 5 * MiB - start, 8 * MiB - start);
        assert.deepEqual(seen, expected);
        // A hole written on its own: guest memory is bit-for-bit what it was.
        const after = guestDigest(dm);
        writeThrough(dm, segments(tr.translate(table, 6 * MiB, 1 * MiB, MR_LOCAL_WRITE)), pattern(MiB, 1));
        writeThrough(dm, segments(tr.translate(table, 2 * MiB, 2 * MiB, MR_REMOTE_ATOMIC)), pattern(2 * MiB, 2));
        assert.equal(guestDigest(dm), after);
        assert.notEqual(after, before);
        assert.ok(new Uint8Array(dm.memory.buffer, table.zeroPageOff, 2 ** pageShift).every((b) => b === 0));
      });

      it('hotplug: an unplugged region reads zeros, and the same table reaches memory plugged back', () => {
        const dm = holey();
        const table = PageTable.allMemory(dm, ALL, { pageShift });
        const handle = table.offset;
        const tr = translators(dm, 2048)[engine];
        const before = segments(tr.translate(handle, 4 * MiB, 4096, MR_REMOTE_READ));
        assert.equal(before[0].gpa, 4 * MiB);

        dm.removeRegion(4 * MiB);
        // Even before rebuild() the table never reaches the unplugged backing.
        const gone = segments(tr.translate(handle, 4 * MiB, 4096, MR_REMOTE_READ));
        assert.deepEqual(gone.map((s) => s.gpa), [null]);
        assert.deepEqual(readThrough(dm, gone), new Uint8Array(4096));
        table.rebuild();
        const sunk = segments(tr.translate(handle, 4 * MiB, 4096, MR_REMOTE_WRITE));
        assert.deepEqual(sunk.map((s) => s.gpa), [null]);

        // Plug memory back at the same place, and more above the old end.
        dm.addRegion(4 * MiB, 2 * MiB);
        dm.addRegion(16 * MiB, 2 * MiB);
        assert.equal(failure(tr.translate(handle, 16 * MiB, 1, 0)), 'OUT_OF_RANGE');
        table.rebuild();
        assert.equal(table.offset, handle);
        assert.equal(table.length, 18 * MiB);
        assert.ok(table.generation >= 2);
        const back = segments(tr.translate(handle, 4 * MiB, 2 * MiB, MR_REMOTE_WRITE));
        assert.deepEqual(back, [{ offset: dm.guest.translate(gpa(4 * MiB), 2 * MiB), len: 2 * MiB, gpa: 4 * MiB }]);
        writeThrough(dm, back, pattern(2 * MiB, 4));
        assert.equal(dm.guest.readU8(gpa(5 * MiB + 1)), pattern(2 * MiB, 4)[MiB + 1]);
        const high = segments(tr.translate(handle, 17 * MiB, 4096, MR_LOCAL_WRITE));
        assert.equal(high[0].gpa, 17 * MiB);

        // Unplug the highest region: the table keeps its extent and the range becomes a hole,
        // so a peer holding the key reads zeros there instead of failing.
        dm.removeRegion(16 * MiB);
        table.rebuild();
        assert.equal(table.length, 18 * MiB);
        assert.deepEqual(segments(tr.translate(handle, 17 * MiB, 4096, 0)).map((s) => s.gpa), [null]);
      });

      it('a configured size covers memory beyond the regions without faulting', () => {
        const dm = holey();
        const table = PageTable.allMemory(dm, MR_REMOTE_READ, { pageShift, sizeBytes: 64 * MiB });
        const tr = translators(dm, 2048)[engine];
        assert.equal(table.length, 64 * MiB);
        const segs = segments(tr.translate(table, 40 * MiB, 4096, MR_REMOTE_READ));
        assert.deepEqual(segs.map((s) => s.gpa), [null]);
        dm.addRegion(40 * MiB, 2 * MiB);
        table.rebuild();
        assert.equal(table.length, 64 * MiB);
        assert.equal(segments(tr.translate(table, 40 * MiB, 4096, MR_REMOTE_READ))[0].gpa, 40 * MiB);
        assert.equal(failure(tr.translate(table, 40 * MiB, 4096, MR_REMOTE_WRITE)), 'ACCESS');
      });
    });
  }
}

describe('all-memory page table', () => {
  it('reregister changes rights and size in place; dispose frees everything', () => {
    const dm = holey();
    const used = dm.arena.usedBytes();
    const table = PageTable.allMemory(dm, MR_REMOTE_READ);
    const tr = MrTranslator.create(dm, 'wasm', 4);
    assert.equal(failure(tr.translate(table, 0, 8, MR_LOCAL_WRITE)), 'ACCESS');
    table.reregister({ access: MR_LOCAL_WRITE | MR_REMOTE_READ, pageShift: 21, sizeBytes: 32 * MiB });
    assert.equal(table.pageShift, 21);
    assert.equal(table.pageCount, 16);
    assert.equal(segments(tr.translate(table, 0, 8, MR_LOCAL_WRITE)).length, 1);
    assert.throws(() => table.reregister({ iova: 0, length: 1, access: 0, pages: [] }), /WRONG_KIND/);
    tr.dispose();
    table.dispose();
    assert.equal(dm.arena.usedBytes(), used);
  });

  it('an empty guest gives an empty table that still answers', () => {
    const dm = device();
    const table = PageTable.allMemory(dm, 0);
    assert.equal(table.length, 0);
    const tr = translators(dm).ts;
    assert.deepEqual(segments(tr.translate(table, 0, 0, 0)), []);
    assert.equal(failure(tr.translate(table, 0, 1, 0)), 'OUT_OF_RANGE');
  });
});
