// The dirty log across threads: a worker sets page bits with Atomics.or while this thread
// harvests again and again; the harvests together return every bit set exactly once (each bit is
// set once): no bit lost, none invented, none returned twice. Both engines, with a small output
// buffer so that words are split across calls and their leftover bits are put back mid-race.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DirtyLog } from '../../src/migration/dirty-log.js';
import { Arena } from '../../src/memory/arena.js';
import type { SetterData } from './dirty-setter-worker.js';

const MEM_PAGES = 16;
const COVER_PAGES = 1 << 19; // 64 KiB of bitmap, a 2 GiB guest
const SET = 150_000;
const PHASES = 16;

function shuffledPages(seed: number): Uint32Array {
  const all = new Uint32Array(COVER_PAGES);
  for (let i = 0; i < COVER_PAGES; i++) all[i] = i;
  let x = seed >>> 0 || 1;
  for (let i = COVER_PAGES - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, SET);
}

describe('dirty log harvest racing a writer thread', () => {
  for (const engine of ['wasm', 'ts'] as const) {
    it(`${engine}: the union of harvests is exactly the set of bits set, each once`, async () => {
      const memory = new WebAssembly.Memory({ initial: MEM_PAGES, maximum: MEM_PAGES, shared: true });
      const log = DirtyLog.create(memory, new Arena(128 * 1024, 512 * 1024), COVER_PAGES * 4096, { engine, outCap: 61 });
      const pages = shuffledPages(engine === 'wasm' ? 7 : 11);
      const control = new Int32Array(new SharedArrayBuffer(8));
      const data: SetterData = { memory, bitmapOff: log.placement.bitmapOff, pages, phases: PHASES, control };
      const worker = new Worker(new URL('./dirty-setter-worker.js', import.meta.url), { workerData: data });
      const exited = new Promise<number>((resolve, reject) => {
        worker.on('error', reject);
        worker.on('exit', resolve);
      });
      const seen = new Uint8Array(COVER_PAGES);
      let taken = 0;
      let duplicates = 0;
      let harvestsWhileSetting = 0;
      const take = () => {
        log.harvestChunks((chunk) => {
          for (const p of chunk) {
            if (seen[p] !== 0) duplicates++;
            seen[p] = 1;
          }
          taken += chunk.length;
        });
        Atomics.add(control, 1, 1);
        Atomics.notify(control, 1);
      };
      while (Atomics.load(control, 0) < PHASES) {
        take();
        harvestsWhileSetting++;
        // Let the worker's 'exit' or an error surface if it died before finishing.
        if ((harvestsWhileSetting & 1023) === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(await exited, 0);
      take();
      assert.equal(duplicates, 0, 'a page returned twice');
      assert.equal(taken, SET);
      for (const p of pages) assert.equal(seen[p], 1, `page ${p} lost`);
      assert.ok(harvestsWhileSetting >= PHASES, 'harvests interleaved with every phase');
      assert.deepEqual([...log.harvest()], []);
    });
  }
});

describe('a dirty log attached over the same placement (another thread marks it)', () => {
  it('shares the bitmap and the on and overflow flags with the log that placed it', () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4, shared: true });
    const arena = new Arena(64 * 1024, 128 * 1024);
    // A log released before: its flags were left up, and a new one over the same bytes starts down.
    const old = DirtyLog.create(memory, arena, 64 * 4096, { outCap: 16 });
    old.start();
    old.overflowed = true;
    old.dispose();
    const log = DirtyLog.create(memory, arena, 64 * 4096, { outCap: 16 });
    assert.equal(log.placement.bitmapOff, old.placement.bitmapOff);
    assert.equal(log.enabled, false);
    assert.equal(log.overflowed, false);
    const other = DirtyLog.attach(memory, log.placement);
    other.mark(5 * 4096, 10);
    assert.deepEqual([...log.harvest()], [], 'nothing is logged while the placing log is stopped');
    log.start();
    assert.equal(other.enabled, true);
    other.mark(5 * 4096, 10);
    other.mark(9 * 4096 + 4000, 200);
    assert.deepEqual([...log.harvest()], [5, 9, 10]);
    other.mark(1 << 30, 8);
    assert.equal(log.overflowed, true, 'a write the attached log could not mark is seen by the placing one');
    log.stop();
    assert.equal(other.enabled, false);
    assert.throws(() => DirtyLog.attach(memory, { ...log.placement, bitmapOff: 4 * 65536 - 8 }), /outside its memory/);
  });
});
