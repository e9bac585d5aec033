// Property tests: the Wasm kernel and its TypeScript twin agree, byte for byte, on random page
// tables and on random, often hostile, arguments; successful results also match a byte-level
// model of the translation; neither engine writes outside its output buffer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type DeviceMemory, gpa } from '../../../src/memory/index.js';
import { MR_ACCESS_WRITES, type MrTranslateFn, MrTranslateTwin, PageTable } from '../../../src/nic/mr/index.js';
import { instantiateKernels } from '../../../src/wasm/loader.js';
import { MiB, device } from './fixtures.js';

const MAX_SEGS = 48;
const GUARD = 64;
const BUF_BYTES = MAX_SEGS * 16 + 16 + 2 * GUARD;

interface Probe {
  iova: number;
  len: number;
  access: number;
  outCap: number;
  /** Misalignment of the output buffer, 0..15. */
  skew: number;
  /** Rarely, a hostile table handle instead of the real one. */
  handle: number | null;
}

const hostileNumber = fc.oneof(
  fc.constantFrom(Number.NaN, -1, -0.5, 0.5, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 63, 2 ** 64, 2 ** 64 - 2048, 1.8e19, Number.MAX_VALUE),
  fc.double({ min: 0, max: 2 ** 65, noNaN: true }),
);

/** Probes near the MR: offsets around its start and end, or anything at all. */
function probes(mrIova: number, mrLen: number, rights: number): fc.Arbitrary<Probe[]> {
  const near = fc.integer({ min: -70_000, max: mrLen + 70_000 }).map((d) => mrIova + d);
  const lens = fc.oneof(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: mrLen + 10 }), fc.constant(mrLen));
  // Mostly rights the table holds, so most probes get past the access check.
  const access = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 15 }).map((a) => a & rights) },
    { weight: 2, arbitrary: fc.oneof(fc.integer({ min: 0, max: 15 }), fc.constantFrom(16, 0x8000_0000, 0xffff_ffff, -1)) },
  );
  // Ranges wholly inside the MR, ranges around its edges, and anything at all.
  const fraction = fc.integer({ min: 0, max: 1_000_000 }).map((n) => n / 1_000_000);
  const inside = fc.tuple(fraction, fraction, fc.integer({ min: 0, max: 3 })).map(([f, g, shrink]) => {
    const d = Math.floor(f * mrLen);
    return { iova: mrIova + d, len: Math.floor(((mrLen - d) * g) / 2 ** (shrink * 3)) };
  });
  const edges = fc.record({ iova: near, len: lens });
  const hostile = fc.record({ iova: fc.oneof(near, hostileNumber), len: fc.oneof(lens, hostileNumber) });
  const range = fc.oneof({ weight: 6, arbitrary: inside }, { weight: 3, arbitrary: edges }, { weight: 1, arbitrary: hostile });
  return fc.array(
    fc.record({
      range,
      access,
      outCap: fc.oneof(fc.constant(MAX_SEGS), fc.integer({ min: 0, max: 6 })),
      skew: fc.integer({ min: 0, max: 15 }),
      handle: fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: -8, max: 2 ** 32 - 1 }) }),
    }),
    { minLength: 1, maxLength: 25 },
  ).map((list) => list.map(({ range: r, ...rest }) => ({ ...r, ...rest })));
}

/** Run both engines on one probe into separate guarded buffers and compare everything. */
function compare(dm: DeviceMemory, table: PageTable, wasm: MrTranslateFn, twin: MrTranslateFn, bufs: [number, number], p: Probe): void {
  const bytes = dm.guest.bytes;
  const handle = p.handle ?? table.offset;
  const results: number[] = [];
  for (const [k, fn] of [wasm, twin].entries()) {
    bytes.fill(0xee, bufs[k], bufs[k] + BUF_BYTES);
    results.push(fn(handle, p.iova, p.len, p.access, bufs[k] + GUARD + p.skew, p.outCap));
  }
  try {
    assert.equal(results[0], results[1]);
    assert.deepEqual(bytes.subarray(bufs[0], bufs[0] + BUF_BYTES), bytes.subarray(bufs[1], bufs[1] + BUF_BYTES));
    const out = bufs[0] + GUARD + p.skew;
    assert.ok(bytes.subarray(bufs[0], out).every((b) => b === 0xee), 'wrote before out');
    // On failure the contents of out are unspecified (but for a fault record); never past outCap.
    assert.ok(bytes.subarray(out + p.outCap * 16, bufs[0] + BUF_BYTES).every((b) => b === 0xee), 'wrote past outCap');
    if (results[0] > 0 && p.handle === null) checkModel(dm, table, p, out, results[0]);
  } catch (err) {
    throw new Error(`engines disagree or misbehave on ${JSON.stringify(p)} over ${JSON.stringify(table.toState()).slice(0, 300)}`, { cause: err });
  }
}

/** Each segment's first and last byte are where a byte-at-a-time translation puts them. */
function checkModel(dm: DeviceMemory, table: PageTable, p: Probe, out: number, count: number): void {
  const v = new DataView(dm.memory.buffer);
  const pageBytes = 2 ** table.pageShift;
  const base = table.iova - (table.iova % pageBytes);
  const throwAway = (p.access & MR_ACCESS_WRITES) !== 0 ? table.sinkPageOff : table.zeroPageOff;
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const s = out + i * 16;
    const off = v.getUint32(s, true);
    const len = v.getUint32(s + 4, true);
    const none = v.getUint32(s + 8, true) === 0xffff_ffff && v.getUint32(s + 12, true) === 0xffff_ffff;
    const segGpa = v.getUint32(s + 8, true) + v.getUint32(s + 12, true) * 2 ** 32;
    assert.ok(len > 0);
    for (const d of [0, len - 1]) {
      const x = p.iova + pos + d;
      const page = Math.floor((x - base) / pageBytes);
      const g = table.pageGpa(page) + ((x - base) % pageBytes);
      const want = dm.guest.regions.lookup(g, 1);
      if (want >= 0) {
        assert.equal(off + d, want);
        assert.equal(segGpa + d, g);
      } else {
        assert.equal(table.kind, 'all-memory');
        assert.ok(none);
        assert.equal(off + d, throwAway + (g % pageBytes));
      }
    }
    pos += len;
  }
  assert.equal(pos, p.len);
}

interface Layout {
  /** Start with [0, 2 MiB), [2, 3 MiB), [3, 4 MiB): whole huge pages, one over two regions. */
  low: boolean;
  regions: { start: number; pages: number }[];
  unplug: number;
}

const layouts: fc.Arbitrary<Layout> = fc.record({
  low: fc.boolean(),
  // Up to 5 regions of up to 2 MiB at 4 KiB granularity in [4, 16 MiB) (overlaps are skipped).
  regions: fc.array(fc.record({ start: fc.integer({ min: 1024, max: 4095 }), pages: fc.integer({ min: 1, max: 512 }) }), { minLength: 1, maxLength: 5 }),
  // Which region, if any, to unplug after registering (hotplug under a live table).
  unplug: fc.integer({ min: -3, max: 5 }),
});

function build(layout: Layout): DeviceMemory {
  const dm = device(24 * MiB, 8 * MiB);
  if (layout.low) {
    dm.addRegion(0, 2 * MiB);
    dm.addRegion(2 * MiB, 1 * MiB);
    dm.addRegion(3 * MiB, 1 * MiB);
  }
  for (const r of layout.regions) {
    try {
      dm.addRegion(r.start * 4096, r.pages * 4096);
    } catch {
      // Overlapping or no room: the layout simply has fewer regions.
    }
  }
  return dm;
}

function engines(dm: DeviceMemory): { wasm: MrTranslateFn; twin: MrTranslateFn; bufs: [number, number] } {
  return {
    wasm: instantiateKernels(dm.memory).mrTranslate as MrTranslateFn,
    twin: new MrTranslateTwin(dm.memory).mrTranslate,
    bufs: [dm.arena.alloc(BUF_BYTES), dm.arena.alloc(BUF_BYTES)],
  };
}

/** Every page-aligned page wholly in guest memory (possibly across adjacent regions). */
function guestPages(dm: DeviceMemory, pageBytes: number): number[] {
  const out: number[] = [];
  const end = dm.guest.regions.list().reduce((e, r) => Math.max(e, r.gpa + r.size), 0);
  for (let g = 0; g + pageBytes <= end; g += pageBytes) {
    let whole = true;
    for (let x = g; whole && x < g + pageBytes; x += 4096) whole = dm.guest.regions.lookup(x, 4096) >= 0;
    if (whole) out.push(g);
  }
  return out;
}

function unplug(dm: DeviceMemory, which: number): void {
  const list = dm.guest.regions.list();
  if (which >= 0 && which < list.length) dm.removeRegion(list[which].gpa);
}

describe('mrTranslate: Wasm and twin agree', () => {
  it('on physical MRs with random page lists, ODP bits and hotplug', () => {
    const spec = fc.record({
      layout: layouts,
      pageShift: fc.constantFrom(12 as const, 21 as const),
      iova: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 2 ** 53 - 2 ** 30, max: 2 ** 53 - 2 ** 25 })),
      picks: fc.array(fc.nat(), { minLength: 1, maxLength: 24 }),
      lenFrac: fc.integer({ min: 0, max: 1000 }).map((n) => n / 1000),
      absent: fc.array(fc.boolean(), { maxLength: 24 }),
      onDemand: fc.boolean(),
      access: fc.integer({ min: 0, max: 15 }).map((a) => (a & 10 ? a | 1 : a)),
    });
    fc.assert(
      fc.property(spec, fc.nat(), (s, seed) => {
        const dm = build(s.layout);
        const pageBytes = 2 ** s.pageShift;
        const candidates = guestPages(dm, pageBytes);
        if (candidates.length === 0) return;
        const pageList = s.picks.map((k) => candidates[k % candidates.length]);
        const inPage = s.iova % pageBytes;
        const min = (pageList.length - 1) * pageBytes - inPage + 1;
        const max = pageList.length * pageBytes - inPage;
        const length = Math.max(1, Math.round(min + (max - min) * s.lenFrac));
        const table = PageTable.physical(dm, { iova: s.iova, length, access: s.access, pageShift: s.pageShift, pages: pageList.map((g) => gpa(g)), onDemand: s.onDemand });
        if (s.onDemand) pageList.forEach((_, i) => (s.absent[i] ? undefined : table.markPresent(i)));
        unplug(dm, s.layout.unplug);
        const { wasm, twin, bufs } = engines(dm);
        fc.assert(fc.property(probes(s.iova, length, s.access), (ps) => ps.forEach((p) => compare(dm, table, wasm, twin, bufs, p))), { numRuns: 4, seed });
      }),
      { numRuns: 100 },
    );
  });

  it('on all-memory MRs over memory with holes', () => {
    const spec = fc.record({
      layout: layouts,
      pageShift: fc.constantFrom(12 as const, 21 as const),
      sizeBytes: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 24 * MiB })),
      onDemand: fc.boolean(),
      absentEvery: fc.integer({ min: 2, max: 9 }),
      access: fc.integer({ min: 0, max: 15 }).map((a) => (a & 10 ? a | 1 : a)),
    });
    fc.assert(
      fc.property(spec, fc.nat(), (s, seed) => {
        const dm = build(s.layout);
        const table = PageTable.allMemory(dm, s.access, { pageShift: s.pageShift, sizeBytes: s.sizeBytes, onDemand: s.onDemand });
        if (s.onDemand) for (let i = 0; i < table.pageCount; i++) if (i % s.absentEvery !== 0) table.markPresent(i);
        unplug(dm, s.layout.unplug);
        if (s.layout.unplug % 2 === 0) table.rebuild();
        const { wasm, twin, bufs } = engines(dm);
        fc.assert(fc.property(probes(0, Math.max(table.length, 1), s.access), (ps) => ps.forEach((p) => compare(dm, table, wasm, twin, bufs, p))), { numRuns: 4, seed });
      }),
      { numRuns: 100 },
    );
  });
});
