// Physical MRs (R1): iova -> page list -> segments, with both engines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpa } from '../../../src/memory/index.js';
import {
  MR_LOCAL_WRITE, MR_REMOTE_ATOMIC, MR_REMOTE_READ, MR_REMOTE_WRITE, PageTable,
} from '../../../src/nic/mr/index.js';
import { ENGINES, KiB, MiB, device, failure, pages, pattern, readThrough, segments, translators, writeThrough } from './fixtures.js';

const ALL = MR_LOCAL_WRITE | MR_REMOTE_WRITE | MR_REMOTE_READ | MR_REMOTE_ATOMIC;

for (const engine of ENGINES) {
  describe(`physical MR translation [${engine}]`, () => {
    it('4 KiB pages: first-page offset, scattered pages, last partial page', () => {
      const dm = device();
      dm.addRegion(0, 16 * MiB);
      const tr = translators(dm)[engine];
      // iova starts 0x123 into its first page; 3 pages cover 0x123 + 9000 bytes.
      const iova = 0x7f00_0000_0123;
      const table = PageTable.physical(dm, { iova, length: 9000, access: ALL, pages: pages(0x5000, 0x2000, 0x9000) });
      const region0 = dm.guest.translate(gpa(0), 0);
      const segs = segments(tr.translate(table, iova, 9000, 0));
      assert.deepEqual(segs, [
        { offset: region0 + 0x5123, len: 4096 - 0x123, gpa: 0x5123 },
        { offset: region0 + 0x2000, len: 4096, gpa: 0x2000 },
        { offset: region0 + 0x9000, len: 9000 - (4096 - 0x123) - 4096, gpa: 0x9000 },
      ]);
      // A range inside one page, and one that ends exactly at the MR's end.
      assert.deepEqual(segments(tr.translate(table, iova + 5000, 100, MR_REMOTE_READ)), [
        { offset: region0 + 0x2000 + 5000 - (4096 - 0x123), len: 100, gpa: 0x2000 + 5000 - (4096 - 0x123) },
      ]);
      const last = segments(tr.translate(table, iova + 8999, 1, 0));
      assert.equal(last.length, 1);
      assert.equal(last[0].gpa, 0x9000 + 8999 - (4096 - 0x123) - 4096);
      // Data written through the segments lands in the guest's pages, in order.
      const data = pattern(9000, 7);
      writeThrough(dm, segs, data);
      const back = new Uint8Array(4096 - 0x123);
      dm.guest.read(gpa(0x5123), back);
      assert.deepEqual(back, data.subarray(0, 4096 - 0x123));
      assert.deepEqual(readThrough(dm, segs), data);
    });

    it('merges physically contiguous pages into one segment', () => {
      const dm = device();
      dm.addRegion(0, 16 * MiB);
      const tr = translators(dm)[engine];
      const table = PageTable.physical(dm, { iova: 0x10000, length: 6 * 4096, access: 0, pages: pages(0x3000, 0x4000, 0x5000, 0x8000, 0x9000, 0x1000) });
      const base = dm.guest.translate(gpa(0), 0);
      assert.deepEqual(segments(tr.translate(table, 0x10000 + 10, 6 * 4096 - 20, 0)), [
        { offset: base + 0x300a, len: 3 * 4096 - 10, gpa: 0x300a },
        { offset: base + 0x8000, len: 2 * 4096, gpa: 0x8000 },
        { offset: base + 0x1000, len: 4096 - 10, gpa: 0x1000 },
      ]);
    });

    it('does not merge pages adjacent in guest-physical space but not in memory', () => {
      const dm = device();
      // Two regions back to back in GPA; the RAM window places them 2 MiB apart in memory.
      dm.addRegion(0, 1 * MiB);
      dm.addRegion(1 * MiB, 1 * MiB);
      const tr = translators(dm)[engine];
      const table = PageTable.physical(dm, { iova: 0, length: 8192, access: 0, pages: pages(MiB - 4096, MiB) });
      const segs = segments(tr.translate(table, 0, 8192, 0));
      assert.equal(segs.length, 2);
      assert.equal(segs[0].offset, dm.guest.translate(gpa(MiB - 4096), 4096));
      assert.equal(segs[1].offset, dm.guest.translate(gpa(MiB), 4096));
    });

    it('2 MiB pages: offsets, merging, a huge page over two regions', () => {
      const dm = device(64 * MiB);
      dm.addRegion(0, 8 * MiB);
      dm.addRegion(8 * MiB, 1 * MiB);
      dm.addRegion(9 * MiB, 7 * MiB);
      const tr = translators(dm)[engine];
      const iova = 0x4000_0000 + 0x1234;
      const length = 3 * 2 * MiB;
      // Pages: 2 MiB, 4 MiB (contiguous with it), 8 MiB (spans the regions at 8 and 9 MiB), 0.
      const table = PageTable.physical(dm, { iova, length, access: ALL, pageShift: 21, pages: pages(2 * MiB, 4 * MiB, 8 * MiB, 0) });
      assert.equal(table.pageCount, 4);
      const base = dm.guest.translate(gpa(0), 0);
      const segs = segments(tr.translate(table, iova, length, MR_LOCAL_WRITE));
      assert.deepEqual(segs, [
        { offset: base + 2 * MiB + 0x1234, len: 4 * MiB - 0x1234, gpa: 2 * MiB + 0x1234 },
        { offset: dm.guest.translate(gpa(8 * MiB), 0), len: 1 * MiB, gpa: 8 * MiB },
        { offset: dm.guest.translate(gpa(9 * MiB), 0), len: 1 * MiB, gpa: 9 * MiB },
        { offset: base, len: 0x1234, gpa: 0 },
      ]);
      const data = pattern(length, 3);
      writeThrough(dm, segs, data);
      assert.equal(dm.guest.readU8(gpa(9 * MiB)), data[4 * MiB - 0x1234 + MiB]);
    });

    it('enforces access rights; local read needs none', () => {
      const dm = device();
      dm.addRegion(0, 1 * MiB);
      const tr = translators(dm)[engine];
      const readOnly = PageTable.physical(dm, { iova: 0, length: 4096, access: MR_REMOTE_READ, pages: pages(0) });
      assert.equal(segments(tr.translate(readOnly, 0, 16, 0)).length, 1);
      assert.equal(segments(tr.translate(readOnly, 0, 16, MR_REMOTE_READ)).length, 1);
      for (const denied of [MR_LOCAL_WRITE, MR_REMOTE_WRITE, MR_REMOTE_ATOMIC, MR_REMOTE_READ | MR_LOCAL_WRITE, 16, 0x8000_0000, 0xffff_ffff]) {
        assert.equal(failure(tr.translate(readOnly, 0, 16, denied)), 'ACCESS', `access ${denied}`);
      }
      const writable = PageTable.physical(dm, { iova: 0, length: 4096, access: MR_LOCAL_WRITE | MR_REMOTE_WRITE, pages: pages(0) });
      assert.equal(segments(tr.translate(writable, 0, 8, MR_LOCAL_WRITE | MR_REMOTE_WRITE)).length, 1);
      assert.equal(failure(tr.translate(writable, 0, 8, MR_REMOTE_READ)), 'ACCESS');
      assert.equal(failure(tr.translate(writable, 0, 8, MR_REMOTE_ATOMIC)), 'ACCESS');
    });

    it('checks bounds and overflow without trapping', () => {
      const dm = device();
      dm.addRegion(0, 1 * MiB);
      const tr = translators(dm)[engine];
      const iova = 2 ** 52;
      const table = PageTable.physical(dm, { iova, length: 3 * 4096, access: 0, pages: pages(0, 0x1000, 0x2000) });
      assert.deepEqual(segments(tr.translate(table, iova + 3 * 4096, 0, 0)), []);
      assert.deepEqual(segments(tr.translate(table, iova, 0, 0)), []);
      const cases: [number, number, string][] = [
        [iova - 1, 1, 'OUT_OF_RANGE'],
        [iova + 3 * 4096, 1, 'OUT_OF_RANGE'],
        [iova + 1, 3 * 4096, 'OUT_OF_RANGE'],
        [iova, 2 ** 53, 'OUT_OF_RANGE'],
        [2 ** 63, 2 ** 63, 'OVERFLOW'], // wraps to 0 in 64 bits
        [2 ** 64 - 4096, 4096, 'OVERFLOW'],
        [2 ** 64 - 4096, 4095, 'OUT_OF_RANGE'], // ends at 2^64 - 1: no wrap
        [iova, -1, 'OVERFLOW'],
        [-iova, 1, 'OVERFLOW'],
        [Number.NaN, 1, 'OVERFLOW'],
        [iova, Number.POSITIVE_INFINITY, 'OVERFLOW'],
        [2 ** 64, 0, 'OVERFLOW'],
        [4096.5, 1, 'OVERFLOW'],
        [iova, 1.5, 'OVERFLOW'],
      ];
      for (const [at, len, want] of cases) assert.equal(failure(tr.translate(table, at, len, 0)), want, `${at} +${len}`);
    });

    it('reports NO_SPACE when the segments do not fit', () => {
      const dm = device();
      dm.addRegion(0, 1 * MiB);
      const tr = translators(dm, 2)[engine];
      const table = PageTable.physical(dm, { iova: 0, length: 3 * 4096, access: 0, pages: pages(0x4000, 0x2000, 0) });
      assert.equal(failure(tr.translate(table, 0, 3 * 4096, 0)), 'NO_SPACE');
      assert.equal(segments(tr.translate(table, 0, 2 * 4096, 0)).length, 2);
      assert.equal(tr.fn(table.offset, 0, 1, 0, tr.outOff, 0), -10);
      assert.equal(tr.fn(table.offset, 0, 0, 0, tr.outOff, 0), 0);
    });

    it('a page unplugged after registration is an error, not a read of stale memory', () => {
      const dm = device();
      dm.addRegion(0, 1 * MiB);
      dm.addRegion(4 * MiB, 1 * MiB);
      const tr = translators(dm)[engine];
      const table = PageTable.physical(dm, { iova: 0, length: 2 * 4096, access: MR_LOCAL_WRITE, pages: pages(0, 4 * MiB) });
      assert.equal(segments(tr.translate(table, 0, 8192, MR_LOCAL_WRITE)).length, 2);
      dm.removeRegion(4 * MiB);
      assert.equal(failure(tr.translate(table, 4096, 1, 0)), 'OUT_OF_RANGE');
      assert.equal(failure(tr.translate(table, 0, 8192, MR_LOCAL_WRITE)), 'OUT_OF_RANGE');
      assert.equal(segments(tr.translate(table, 0, 4096, 0)).length, 1);
      // Plugged back, the page is reached through its new backing, by the same handle.
      const region = dm.addRegion(4 * MiB, 1 * MiB);
      table.rebuild();
      assert.deepEqual(segments(tr.translate(table, 4096, 4096, MR_LOCAL_WRITE)), [{ offset: region.hostOffset, len: 4096, gpa: 4 * MiB }]);
    });

    it('refuses bad handles and output buffers outside the memory', () => {
      const dm = device();
      dm.addRegion(0, 1 * MiB);
      const tr = translators(dm)[engine];
      const table = PageTable.physical(dm, { iova: 0, length: 4096, access: 0, pages: pages(0) });
      const size = dm.memory.buffer.byteLength;
      for (const handle of [table.offset + 4, table.offset + 8, 0, size - 8, size, 0xffff_fff8, -8, dm.layout.ramBase]) {
        assert.equal(tr.fn(handle, 0, 1, 0, tr.outOff, 4), -14, `handle ${handle}`);
      }
      assert.equal(tr.fn(table.offset, 0, 1, 0, size - 16, 2), -2);
      assert.equal(tr.fn(table.offset, 0, 1, 0, 0xffff_fff0, 1), -2);
      assert.equal(tr.fn(table.offset, 0, 1, 0, size - 16, 1), 1);
      table.dispose();
      assert.equal(failure(tr.translate(table.offset, 0, 1, 0)), 'BAD_KEY');
    });
  });
}

describe('physical page table', () => {
  it('writes the documented header and one entry per page', () => {
    const dm = device();
    dm.addRegion(0, 16 * MiB);
    const table = PageTable.physical(dm, { iova: 0x1800, length: 3 * 4096, access: MR_REMOTE_READ, pages: pages(0x7000, 0x3000, 0x1000, 0x4000) });
    const v = new DataView(dm.memory.buffer);
    const h = table.offset;
    assert.equal(h % 8, 0);
    assert.equal(v.getUint32(h, true), 0x5450524d);
    assert.equal(v.getUint32(h + 4, true), 0);
    assert.equal(v.getUint32(h + 8, true), 0x1800);
    assert.equal(v.getUint32(h + 16, true), 3 * 4096);
    assert.equal(v.getUint32(h + 24, true), 12);
    assert.equal(v.getUint32(h + 28, true), 4);
    assert.equal(v.getUint32(h + 32, true), MR_REMOTE_READ);
    assert.equal(v.getUint32(h + 48, true), dm.layout.regionTableOff);
    const entries = v.getUint32(h + 52, true);
    assert.deepEqual([0, 1, 2, 3].map((i) => v.getUint32(entries + 8 * i, true)), [0x7001, 0x3001, 0x1001, 0x4001]);
    assert.deepEqual([0, 1, 2, 3].map((i) => table.pageGpa(i)), [0x7000, 0x3000, 0x1000, 0x4000]);
    assert.equal(table.pageIndex(0x1800 + 4096), 1);
  });

  it('validates registrations', () => {
    const dm = device();
    dm.addRegion(0, 4 * MiB);
    const code = (fn: () => unknown, want: string) => assert.throws(fn, (e: unknown) => e instanceof Error && 'code' in e && e.code === want);
    const ok = { iova: 0, length: 8192, access: 0, pages: pages(0, 4096) };
    code(() => PageTable.physical(dm, { ...ok, pages: pages(0, 4097) }), 'MISALIGNED');
    code(() => PageTable.physical(dm, { ...ok, pages: pages(0) }), 'PAGE_COUNT');
    code(() => PageTable.physical(dm, { ...ok, pages: pages(0, 4096, 8192) }), 'PAGE_COUNT');
    code(() => PageTable.physical(dm, { ...ok, iova: 1 }), 'PAGE_COUNT'); // 8192 bytes from offset 1 need 3 pages
    code(() => PageTable.physical(dm, { ...ok, length: 0, pages: [] }), 'OVERFLOW');
    code(() => PageTable.physical(dm, { ...ok, iova: Number.MAX_SAFE_INTEGER - 100 }), 'OVERFLOW');
    code(() => PageTable.physical(dm, { ...ok, iova: 0.5 }), 'OVERFLOW');
    code(() => PageTable.physical(dm, { ...ok, access: 16 }), 'BAD_ACCESS');
    code(() => PageTable.physical(dm, { ...ok, access: MR_REMOTE_WRITE }), 'BAD_ACCESS');
    code(() => PageTable.physical(dm, { ...ok, pageShift: 16 as 12 }), 'BAD_PAGE_SHIFT');
    code(() => PageTable.physical(dm, { ...ok, pageShift: 21, pages: pages(4096) }), 'MISALIGNED');
    code(() => PageTable.physical(dm, { ...ok, pages: pages(0, 4 * MiB) }), 'NOT_GUEST_MEMORY');
    code(() => PageTable.physical(dm, { ...ok, pages: [0, -4096] as never }), 'MISALIGNED');
    const used = dm.arena.usedBytes();
    const table = PageTable.physical(dm, ok);
    assert.ok(dm.arena.usedBytes() > used);
    table.dispose();
    table.dispose();
    assert.equal(dm.arena.usedBytes(), used);
    code(() => table.toState(), 'DISPOSED');
  });

  it('reregisters in place, keeping its handle', () => {
    const dm = device();
    dm.addRegion(0, 4 * MiB);
    const tr = translators(dm).wasm;
    const table = PageTable.physical(dm, { iova: 0x1000, length: 4096, access: 0, pages: pages(0x5000) });
    const handle = table.offset;
    assert.equal(table.generation, 0);
    table.reregister({ iova: 0x9000_0000, length: 64 * KiB, access: MR_LOCAL_WRITE, pages: pages(...Array.from({ length: 16 }, (_, i) => 0x10000 + i * 4096)) });
    assert.equal(table.offset, handle);
    assert.equal(table.generation, 1);
    assert.equal(failure(tr.translate(handle, 0x1000, 1, 0)), 'OUT_OF_RANGE');
    assert.deepEqual(segments(tr.translate(handle, 0x9000_0000, 64 * KiB, MR_LOCAL_WRITE)).map((s) => [s.gpa, s.len]), [[0x10000, 64 * KiB]]);
    // A refused reregistration leaves the old translation in force.
    assert.throws(() => table.reregister({ iova: 0, length: 4096, access: 0, pages: pages(8 * MiB) }));
    assert.equal(segments(tr.translate(handle, 0x9000_0000, 1, 0)).length, 1);
    table.rebuild();
    assert.equal(table.generation, 2);
    assert.equal(segments(tr.translate(handle, 0x9000_0000, 1, 0)).length, 1);
    assert.throws(() => table.reregister({ access: 0 }), /WRONG_KIND/);
  });
});
