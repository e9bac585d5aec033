// Property tests of the dirty-log kernels: the Wasm module and its TypeScript twin agree on
// random bitmaps, cursors, output sizes and ranges (results, cursors, output and the bitmap
// after), and both agree with a model: a harvest drained to the end returns exactly the bits that
// were set, ascending, and leaves the bitmap empty; a mark sets exactly its range's pages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type DirtyKernels, DirtyTwin, wasmDirtyKernels } from '../../src/migration/dirty-kernels.js';
import { DirtyLog } from '../../src/migration/dirty-log.js';
import { Arena } from '../../src/memory/arena.js';
import { instantiateKernels } from '../../src/wasm/loader.js';
import { ST_MISALIGNED, ST_OUT_OF_RANGE, ST_OVERFLOW } from '../../src/wasm/status.js';

const PAGES = 8;
const MEM_BYTES = PAGES * 65536;
const BITMAP = 128 * 1024;
const CURSOR = 256 * 1024;
const OUT = CURSOR + 64;

interface Rig {
  memory: WebAssembly.Memory;
  bytes: Uint8Array;
  k: DirtyKernels;
}

function rigs(): [Rig, Rig] {
  const make = (engine: 'wasm' | 'ts'): Rig => {
    const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
    const k = engine === 'wasm' ? wasmDirtyKernels(instantiateKernels(memory)) : new DirtyTwin(memory);
    return { memory, bytes: new Uint8Array(memory.buffer), k };
  };
  return [make('wasm'), make('ts')];
}

/** Set bits of a bitmap: a density-mixed random set of page numbers below `pages`. */
function bitSet(pages: number): fc.Arbitrary<number[]> {
  return fc.oneof(
    fc.uniqueArray(fc.integer({ min: 0, max: pages - 1 }), { maxLength: 40 }),
    fc.uniqueArray(fc.integer({ min: 0, max: pages - 1 }), { maxLength: pages }),
    // Runs of consecutive pages: full words and words split across the output's end.
    fc.array(fc.tuple(fc.integer({ min: 0, max: pages - 1 }), fc.integer({ min: 1, max: 200 })), { maxLength: 6 }).map((runs) => {
      const s = new Set<number>();
      for (const [at, n] of runs) for (let p = at; p < Math.min(pages, at + n); p++) s.add(p);
      return [...s];
    }),
  );
}

function setBits(bytes: Uint8Array, base: number, pages: readonly number[]): void {
  for (const p of pages) bytes[base + (p >>> 3)] |= 1 << (p & 7);
}

function setOf(bytes: Uint8Array, base: number, bitmapBytes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmapBytes * 8; i++) if (bytes[base + (i >>> 3)] & (1 << (i & 7))) out.push(i);
  return out;
}

describe('dirtyHarvest: Wasm and twin', () => {
  it('agree call by call, and a drained harvest returns exactly the set bits, ascending, leaving the bitmap empty', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 512 }).map((words) => words * 8),
        fc.integer({ min: 0, max: 1 << 20 }),
        fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 100 }), fc.constant(4096)),
        (bitmapBytes, seed, outCap) => {
          const pages = bitmapBytes * 8;
          const set = fc.sample(bitSet(pages), { numRuns: 1, seed })[0];
          const [w, t] = rigs();
          for (const r of [w, t]) {
            setBits(r.bytes, BITMAP, set);
            new DataView(r.memory.buffer).setUint32(CURSOR, 0, true);
          }
          const got: number[] = [];
          const view = (r: Rig) => new DataView(r.memory.buffer);
          for (let calls = 0; calls < 10_000; calls++) {
            const a = w.k.dirtyHarvest(BITMAP, bitmapBytes, CURSOR, OUT, outCap);
            const b = t.k.dirtyHarvest(BITMAP, bitmapBytes, CURSOR, OUT, outCap);
            assert.equal(a, b, 'count');
            assert.ok(a >= 0 && a <= outCap);
            assert.equal(view(w).getUint32(CURSOR, true), view(t).getUint32(CURSOR, true), 'cursor');
            assert.deepEqual(w.bytes.subarray(OUT, OUT + a * 4), t.bytes.subarray(OUT, OUT + a * 4), 'output');
            assert.deepEqual(w.bytes.subarray(BITMAP, BITMAP + bitmapBytes), t.bytes.subarray(BITMAP, BITMAP + bitmapBytes), 'bitmap');
            for (let i = 0; i < a; i++) got.push(view(w).getUint32(OUT + 4 * i, true));
            if (view(w).getUint32(CURSOR, true) === bitmapBytes) break;
            // Progress: with room for one page, each call either emits or reaches the end.
            if (outCap > 0) assert.ok(a > 0, 'a call with room emits');
            else break;
          }
          if (outCap > 0) {
            assert.deepEqual(got, [...set].sort((x, y) => x - y));
            assert.deepEqual(setOf(w.bytes, BITMAP, bitmapBytes), []);
          } else {
            // No room: nothing taken, cursor parked at the first non-empty word.
            assert.deepEqual(setOf(w.bytes, BITMAP, bitmapBytes), [...set].sort((x, y) => x - y));
            const first = set.length === 0 ? bitmapBytes : Math.floor(Math.min(...set) / 64) * 8;
            assert.equal(view(w).getUint32(CURSOR, true), first);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('resumes from any word cursor: pages below it stay set', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.nat(), fc.nat(), (words, seed, at) => {
        const bitmapBytes = words * 8;
        const set = fc.sample(bitSet(bitmapBytes * 8), { numRuns: 1, seed })[0];
        const cursor = (at % (words + 1)) * 8;
        const [w, t] = rigs();
        for (const r of [w, t]) {
          setBits(r.bytes, BITMAP, set);
          new DataView(r.memory.buffer).setUint32(CURSOR, cursor, true);
        }
        const a = w.k.dirtyHarvest(BITMAP, bitmapBytes, CURSOR, OUT, 4096);
        assert.equal(a, t.k.dirtyHarvest(BITMAP, bitmapBytes, CURSOR, OUT, 4096));
        const expected = set.filter((p) => p >= cursor * 8).sort((x, y) => x - y);
        assert.equal(a, expected.length);
        assert.deepEqual([...new Uint32Array(w.memory.buffer, OUT, a)], expected);
        assert.deepEqual(setOf(w.bytes, BITMAP, bitmapBytes), set.filter((p) => p < cursor * 8).sort((x, y) => x - y));
        assert.deepEqual(setOf(t.bytes, BITMAP, bitmapBytes), setOf(w.bytes, BITMAP, bitmapBytes));
      }),
      { numRuns: 150 },
    );
  });

  it('refuses bad arguments with the same status, touching nothing', () => {
    const cases: [number, number, number, number, number, number][] = [
      [BITMAP + 4, 64, CURSOR, OUT, 16, ST_MISALIGNED],
      [BITMAP, 60, CURSOR, OUT, 16, ST_MISALIGNED],
      [BITMAP, 64, CURSOR + 2, OUT, 16, ST_MISALIGNED],
      [BITMAP, 64, CURSOR, OUT + 1, 16, ST_MISALIGNED],
      [MEM_BYTES - 64, 128, CURSOR, OUT, 16, ST_OUT_OF_RANGE],
      [BITMAP, 64, MEM_BYTES - 2, OUT, 16, ST_MISALIGNED],
      [BITMAP, 64, MEM_BYTES, OUT, 16, ST_OUT_OF_RANGE],
      [BITMAP, 64, CURSOR, MEM_BYTES - 16, 16, ST_OUT_OF_RANGE],
      [BITMAP, 64, CURSOR, OUT, 2 ** 31, ST_OUT_OF_RANGE],
      [0, 2 ** 29 + 8, CURSOR, OUT, 16, ST_OVERFLOW],
      [2 ** 32 - 8, 8, CURSOR, OUT, 16, ST_OUT_OF_RANGE],
    ];
    for (const [bitmap, bytes, cursor, out, cap, status] of cases) {
      const [w, t] = rigs();
      for (const r of [w, t]) r.bytes.fill(0xff, BITMAP, BITMAP + 128);
      for (const r of [w, t]) new DataView(r.memory.buffer).setUint32(CURSOR, 0, true);
      assert.equal(w.k.dirtyHarvest(bitmap, bytes, cursor, out, cap), status, `wasm ${[bitmap, bytes, cursor, out, cap]}`);
      assert.equal(t.k.dirtyHarvest(bitmap, bytes, cursor, out, cap), status, `twin ${[bitmap, bytes, cursor, out, cap]}`);
      assert.ok(w.bytes.subarray(BITMAP, BITMAP + 128).every((b) => b === 0xff));
      // Below BITMAP the Wasm memory holds the module's static data; the rest must match.
      assert.deepEqual(w.bytes.subarray(BITMAP), t.bytes.subarray(BITMAP));
    }
    // A cursor that is not a word offset, or past the end.
    for (const [cursor, status] of [[4, ST_MISALIGNED], [72, ST_OUT_OF_RANGE]] as const) {
      const [w, t] = rigs();
      for (const r of [w, t]) new DataView(r.memory.buffer).setUint32(CURSOR, cursor, true);
      assert.equal(w.k.dirtyHarvest(BITMAP, 64, CURSOR, OUT, 16), status);
      assert.equal(t.k.dirtyHarvest(BITMAP, 64, CURSOR, OUT, 16), status);
    }
  });
});

const hostile = fc.constantFrom(Number.NaN, -1, -4096, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 64, 0.5, 4095.5);

describe('dirtyMark: Wasm and twin', () => {
  it('set exactly the pages of the range that the bitmap covers, and say when it reaches past them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }).map((w) => w * 8),
        fc.array(
          fc.record({
            gpa: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 2 ** 22 }) }, { weight: 1, arbitrary: hostile }),
            len: fc.oneof(
              { weight: 4, arbitrary: fc.integer({ min: 0, max: 9000 }) },
              { weight: 3, arbitrary: fc.integer({ min: 0, max: 2 ** 22 }) },
              { weight: 1, arbitrary: hostile },
            ),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (bitmapBytes, ranges) => {
          const [w, t] = rigs();
          const model = new Set<number>();
          const pages = bitmapBytes * 8;
          for (const { gpa, len } of ranges) {
            const a = w.k.dirtyMark(BITMAP, bitmapBytes, gpa, len);
            assert.equal(a, t.k.dirtyMark(BITMAP, bitmapBytes, gpa, len), `${gpa}+${len}`);
            const valid = gpa >= 0 && len >= 0 && gpa <= 2 ** 53 - 1 && len <= 2 ** 53 - 1;
            if (!valid) {
              assert.equal(a, ST_OVERFLOW);
              continue;
            }
            const start = Math.floor(gpa);
            const n = Math.floor(len);
            if (n === 0) {
              assert.equal(a, 0);
              continue;
            }
            const first = Math.floor(start / 4096);
            const last = Math.floor((start + n - 1) / 4096);
            for (let p = first; p <= Math.min(last, pages - 1); p++) model.add(p);
            assert.equal(a, last < pages ? last - first + 1 : ST_OUT_OF_RANGE);
          }
          assert.deepEqual(setOf(w.bytes, BITMAP, bitmapBytes), [...model].sort((x, y) => x - y));
          assert.deepEqual(w.bytes.subarray(BITMAP), t.bytes.subarray(BITMAP), 'memories past the static data');
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('DirtyLog.mark', () => {
  it('sets the same bits as the kernel, inline for short ranges and through it for long ones', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 24 }), fc.oneof(fc.integer({ min: 1, max: 8192 }), fc.integer({ min: 1, max: 2 ** 21 }))), { maxLength: 30 }),
        (ranges) => {
          const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
          const log = DirtyLog.create(memory, new Arena(BITMAP, 256 * 1024), 16 * 1024 * 1024);
          const [w] = rigs();
          log.start();
          for (const [gpa, len] of ranges) {
            log.mark(gpa, len);
            w.k.dirtyMark(BITMAP, log.placement.bitmapBytes, gpa, len);
          }
          const b = log.placement.bitmapBytes;
          assert.deepEqual(new Uint8Array(memory.buffer, log.placement.bitmapOff, b), w.bytes.subarray(BITMAP, BITMAP + b));
          assert.equal(log.overflowed, ranges.some(([gpa, len]) => gpa + len > 16 * 1024 * 1024));
          assert.equal(log.marks, ranges.length);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('marks nothing while stopped; start() forgets old bits; harvest() drains in chunks of outCap', () => {
    for (const engine of ['wasm', 'ts'] as const) {
      const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
      const log = DirtyLog.create(memory, new Arena(BITMAP, 256 * 1024), 64 * 1024 * 1024, { engine, outCap: 7 });
      log.mark(0, 4096);
      assert.equal(log.isDirty(0), false);
      log.start();
      const pages = [0, 1, 63, 64, 65, 1000, 4095, 16383];
      for (const p of pages) log.mark(p * 4096 + 17, 1);
      log.stop();
      log.mark(5 * 4096, 1);
      assert.deepEqual([...log.harvest()], pages);
      assert.deepEqual([...log.harvest()], []);
      log.start();
      log.mark(0, 64 * 1024 * 1024);
      log.start();
      assert.deepEqual([...log.harvest()], []);
      log.mark(4096 * 10, 4096 * 40);
      assert.deepEqual([...log.harvest()], Array.from({ length: 40 }, (_, i) => 10 + i));
      assert.equal(log.pagesHarvested, pages.length + 40);
      log.dispose();
    }
  });
});
