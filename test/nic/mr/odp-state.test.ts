// On-demand paging (R3 hook) and the plain-data state of page tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpa } from '../../../src/memory/index.js';
import { MR_LOCAL_WRITE, MR_ON_DEMAND, MR_REMOTE_READ, MR_REMOTE_WRITE, MrError, PageTable, type PageTableState } from '../../../src/nic/mr/index.js';
import { ENGINES, MiB, device, failure, pages, segments, translators } from './fixtures.js';

for (const engine of ENGINES) {
  describe(`on-demand paging [${engine}]`, () => {
    it('an absent page faults with the iova of the first byte touched in it', () => {
      const dm = device();
      dm.addRegion(0, 4 * MiB);
      const tr = translators(dm)[engine];
      const iova = 0x10_0000_0800;
      const table = PageTable.physical(dm, { iova, length: 3 * 4096, access: MR_LOCAL_WRITE | MR_REMOTE_WRITE, pages: pages(0x1000, 0x2000, 0x8000, 0x3000), onDemand: true });
      assert.equal(table.onDemand, true);
      const miss = tr.translate(table, iova + 100, 10, MR_REMOTE_WRITE);
      assert.equal(failure(miss), 'PAGE_FAULT');
      assert.deepEqual(!miss.ok && miss.fault, { iova: iova + 100, page: 0, access: MR_REMOTE_WRITE });
      table.markPresent(0);
      table.markPresent(1);
      // Pages 0 and 1 resolve; the access runs on into page 2 and faults at its first byte.
      const second = tr.translate(table, iova + 100, 8192, MR_LOCAL_WRITE);
      assert.deepEqual(!second.ok && second.fault, { iova: iova - 0x800 + 2 * 4096, page: 2, access: MR_LOCAL_WRITE });
      table.markPresent(2);
      assert.deepEqual(segments(tr.translate(table, iova + 100, 8192, MR_LOCAL_WRITE)).map((s) => s.gpa), [0x1000 + 0x800 + 100, 0x8000]);
      // The page moves: invalidate, fault again, map it at its new home.
      table.invalidate(1);
      assert.equal(failure(tr.translate(table, iova + 4096, 1, 0)), 'PAGE_FAULT');
      assert.deepEqual(segments(tr.translate(table, iova, 1, 0)).map((s) => s.gpa), [0x1800]);
      table.markPresent(1, gpa(0x6000));
      assert.equal(table.pageGpa(1), 0x6000);
      // A rebuild after hotplug keeps moved pages and present bits as they are.
      table.invalidate(3);
      table.rebuild();
      assert.deepEqual([0, 1, 2, 3].map((i) => [table.pageGpa(i), table.isPresent(i)]), [[0x1000, true], [0x6000, true], [0x8000, true], [0x3000, false]]);
      assert.deepEqual(segments(tr.translate(table, iova + 4096 - 0x800, 4096, 0)), [
        { offset: dm.guest.translate(gpa(0x6000), 4096), len: 4096, gpa: 0x6000 },
      ]);
    });

    it('an all-memory table can start absent (post-copy) and fault page by page', () => {
      const dm = device();
      dm.addRegion(0, 4 * MiB);
      const tr = translators(dm)[engine];
      const table = PageTable.allMemory(dm, MR_REMOTE_READ, { pageShift: 21, onDemand: true });
      const miss = tr.translate(table, 3 * MiB, 16, MR_REMOTE_READ);
      assert.deepEqual(!miss.ok && miss.fault, { iova: 3 * MiB, page: 1, access: MR_REMOTE_READ });
      table.markPresent(1);
      assert.equal(segments(tr.translate(table, 3 * MiB, 16, MR_REMOTE_READ))[0].gpa, 3 * MiB);
      assert.throws(() => table.markPresent(0, gpa(2 * MiB)), /WRONG_KIND/);
      // Hotplug keeps the pages already resolved and adds new ones absent.
      dm.addRegion(4 * MiB, 2 * MiB);
      table.rebuild();
      assert.equal(table.isPresent(1), true);
      assert.equal(table.isPresent(2), false);
    });
  });
}

describe('ODP bookkeeping', () => {
  it('refuses pages outside the table and GPAs outside guest memory', () => {
    const dm = device();
    dm.addRegion(0, 1 * MiB);
    const table = PageTable.physical(dm, { iova: 0, length: 4096, access: 0, pages: pages(0x7000), onDemand: true });
    assert.throws(() => table.markPresent(1), /BAD_PAGE/);
    assert.throws(() => table.invalidate(-1), /BAD_PAGE/);
    assert.throws(() => table.markPresent(0, gpa(2 * MiB)), /NOT_GUEST_MEMORY/);
    assert.throws(() => table.markPresent(0, gpa(0x7001)), /MISALIGNED/);
    // An on-demand page need not be guest memory until it is made present.
    const later = PageTable.physical(dm, { iova: 0, length: 4096, access: 0, pages: pages(8 * MiB), onDemand: true });
    assert.equal(later.isPresent(0), false);
    // The verbs access word may carry ON_DEMAND instead of the option; it is not a right.
    const flagged = PageTable.physical(dm, { iova: 0, length: 4096, access: MR_REMOTE_READ | MR_ON_DEMAND, pages: pages(0x7000) });
    assert.equal(flagged.onDemand, true);
    assert.equal(flagged.access, MR_REMOTE_READ);
    assert.equal(flagged.isPresent(0), false);
    assert.equal(PageTable.allMemory(dm, MR_ON_DEMAND).onDemand, true);
  });
});

describe('page table state', () => {
  it('round-trips physical and all-memory tables, present bits included', () => {
    const dm = device();
    dm.addRegion(0, 4 * MiB);
    dm.addRegion(8 * MiB, 2 * MiB);
    const phys = PageTable.physical(dm, { iova: 0x3000_0010, length: 3 * 4096, access: MR_LOCAL_WRITE | MR_REMOTE_READ, pages: pages(0x4000, 8 * MiB, 0x1000, 0x9000), onDemand: true });
    phys.markPresent(0);
    phys.markPresent(3);
    const all = PageTable.allMemory(dm, MR_REMOTE_READ, { pageShift: 21, sizeBytes: 16 * MiB });
    const physState = phys.toState();
    assert.deepEqual(physState, {
      kind: 'physical', iova: 0x3000_0010, length: 3 * 4096, pages: [0x4000, 8 * MiB, 0x1000, 0x9000],
      pageShift: 12, access: MR_LOCAL_WRITE | MR_REMOTE_READ, onDemand: true, absent: [1, 2],
    });
    const allState = all.toState();
    assert.deepEqual(allState, { kind: 'all-memory', sizeBytes: 16 * MiB, pageShift: 21, access: MR_REMOTE_READ, onDemand: false, absent: [] });

    // Restore on another device with the same memory layout, through JSON as a real blob would go.
    const dest = device();
    dest.addRegion(0, 4 * MiB);
    dest.addRegion(8 * MiB, 2 * MiB);
    const phys2 = PageTable.fromState(dest, JSON.parse(JSON.stringify(physState)));
    const all2 = PageTable.fromState(dest, JSON.parse(JSON.stringify(allState)));
    assert.deepEqual(phys2.toState(), physState);
    assert.deepEqual(all2.toState(), allState);
    const tr = translators(dest).wasm;
    assert.deepEqual(segments(tr.translate(phys2, 0x3000_0010 + 3 * 4096 - 1, 1, 0)).map((s) => s.gpa), [0x9000 + 0x10 - 1]);
    assert.equal(failure(tr.translate(phys2, 0x3000_0010 + 4096, 1, 0)), 'PAGE_FAULT');
  });

  it('refuses malformed or inconsistent states', () => {
    const dm = device();
    dm.addRegion(0, 4 * MiB);
    const good: PageTableState = { kind: 'physical', iova: 0, length: 4096, pages: [0x1000], pageShift: 12, access: 0, onDemand: true, absent: [0] };
    PageTable.fromState(dm, good).dispose();
    const bad: unknown[] = [
      null, 7, 'x', {},
      { ...good, kind: 'virtual' },
      { ...good, pageShift: 13 },
      { ...good, onDemand: 'yes' },
      { ...good, pages: [0x1001] },
      { ...good, pages: '0x1000' },
      { ...good, pages: [0x1000, 0x2000] },
      { ...good, absent: [1] },
      { ...good, absent: [-1] },
      { ...good, onDemand: false, absent: [0] },
      { ...good, iova: -1 },
      { ...good, length: 2 ** 60 },
      { ...good, access: 0x100 },
      { ...good, onDemand: false, absent: [], pages: [64 * MiB] },
      { kind: 'all-memory', pageShift: 12, access: 0, onDemand: false, absent: [], sizeBytes: -4 },
      { kind: 'all-memory', pageShift: 12, access: 0, onDemand: false, absent: [] },
    ];
    for (const state of bad) assert.throws(() => PageTable.fromState(dm, state), MrError, JSON.stringify(state));
  });
});
