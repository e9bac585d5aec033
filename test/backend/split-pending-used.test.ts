// SplitQueue.pendingUsedEntries / restorePendingUsed, what a durable backend journals: the used
// elements added but not flushed, put back into a queue rebuilt from state() so its flush gives
// the guest exactly what the first queue's would have; hostile entries are refused whole.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SplitRingDriver } from '../../src/guest/split-ring.js';
import { Arena } from '../../src/memory/arena.js';
import { gpa } from '../../src/memory/gpa.js';
import { VirtioError } from '../../src/virtio/errors.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { SplitQueue } from '../../src/virtio/split-queue.js';
import { DATA_AREA, RING_AREA, hostileMemory } from '../fuzz/split-rings.js';

const SIZE = 8;

function setup(engine: KernelEngine) {
  const dm = hostileMemory();
  const driver = SplitRingDriver.create<number>(dm.guest, new Arena(RING_AREA, DATA_AREA - RING_AREA), { size: SIZE, eventIdx: true, indirectDesc: true });
  const initial = driver.initialDeviceState();
  const queue = SplitQueue.fromState(dm, initial, engine);
  return { dm, driver, queue, usedGpa: initial.usedGpa };
}

/** Offer `n` chains of one 32-byte writable buffer each (tokens from `token0`) and pop them all. */
function offerAndPop(driver: SplitRingDriver<number>, queue: SplitQueue, n: number, token0: number) {
  for (let i = 0; i < n; i++) assert.ok(driver.add([], [{ gpa: DATA_AREA + 64 * (token0 + i), len: 32 }], token0 + i) >= 0);
  driver.publish();
  const chains = queue.pop();
  assert.equal(chains.length, n);
  return chains;
}

/**
 * One pass that moves used idx off 0, then a second pass that adds four used elements out of
 * order without flushing. `restore`: a second queue built from the first's state() takes them
 * over (the first is dropped unflushed) and flushes; otherwise the first flushes them itself.
 */
function run(engine: KernelEngine, restore: boolean) {
  const { dm, driver, queue, usedGpa } = setup(engine);
  for (const c of offerAndPop(driver, queue, 3, 0)) queue.addUsed(c, 4);
  queue.flush();
  assert.equal(driver.collect().length, 3);
  const chains = offerAndPop(driver, queue, 5, 100);
  const ids = chains.map((c) => c.id);
  assert.deepEqual(queue.pendingUsedEntries(), []);
  queue.addUsed(chains[2], 7);
  queue.addUsed(chains[4], 32);
  queue.addUsed(chains[0], 0);
  queue.addUsed(chains[3], 1);
  const entries = queue.pendingUsedEntries();
  assert.deepEqual(entries, [[ids[2], 7], [ids[4], 32], [ids[0], 0], [ids[3], 1]]);
  let flushed = queue;
  if (restore) {
    const state = queue.state();
    assert.equal(state.nextUsed, 3, 'the state counts only what was published');
    queue.dispose();
    flushed = SplitQueue.fromState(dm, JSON.parse(JSON.stringify(state)), engine);
    assert.deepEqual(flushed.pendingUsedEntries(), []);
    flushed.restorePendingUsed(JSON.parse(JSON.stringify(entries)));
    assert.deepEqual(flushed.pendingUsedEntries(), entries);
  }
  flushed.flush();
  assert.deepEqual(flushed.pendingUsedEntries(), [], 'flush empties the pending list');
  const ring = dm.guest.slice(gpa(usedGpa), 4 + 8 * SIZE);
  const collected = driver.collect().map((u) => [u.id, u.len, u.token]);
  return { ring, collected, nextUsed: flushed.state().nextUsed, ids };
}

for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
  describe(`split queue pending used elements [${engine}]`, () => {
    it('a queue rebuilt from state() and given the pending entries publishes what the first would have', () => {
      const direct = run(engine, false);
      const restored = run(engine, true);
      const { ids } = direct;
      assert.deepEqual(direct.collected, [[ids[2], 7, 102], [ids[4], 32, 104], [ids[0], 0, 100], [ids[3], 1, 103]]);
      assert.deepEqual(restored.collected, direct.collected);
      assert.deepEqual(restored.ring, direct.ring, 'the used ring (flags, idx, elements) is byte for byte the same');
      assert.equal(restored.nextUsed, 7);
      assert.equal(direct.nextUsed, 7);
    });

    it('refuses ids outside the ring, bad lengths and too many entries, adding none of them', () => {
      const { queue } = setup(engine);
      const refuse = (entries: [number, number][], what: string) => {
        assert.throws(() => queue.restorePendingUsed(entries), VirtioError, what);
        assert.deepEqual(queue.pendingUsedEntries(), [], `${what}: nothing added`);
      };
      refuse([[SIZE, 0]], 'id = ring size');
      refuse([[0xffff_ffff, 0]], 'id 2^32-1');
      refuse([[-1, 0]], 'negative id');
      refuse([[1.5, 0]], 'fractional id');
      refuse([[Number.NaN, 0]], 'NaN id');
      refuse([[0, -1]], 'negative length');
      refuse([[0, 2.5]], 'fractional length');
      refuse([[0, 2 ** 32]], 'length above 32 bits');
      refuse([[0, Number.POSITIVE_INFINITY]], 'infinite length');
      refuse([[0, 4], [1, 4], [SIZE + 3, 4]], 'a bad entry after good ones');
      refuse(Array.from({ length: SIZE + 1 }, (_, i): [number, number] => [i % SIZE, 0]), 'more entries than the ring');
      queue.restorePendingUsed([[SIZE - 1, 0xffff_ffff]]);
      assert.deepEqual(queue.pendingUsedEntries(), [[SIZE - 1, 0xffff_ffff]], 'the largest id and length are accepted');
    });

    it('counts entries already pending against the ring size', () => {
      const { driver, queue } = setup(engine);
      const chains = offerAndPop(driver, queue, 6, 0);
      for (const c of chains) queue.addUsed(c, 1);
      assert.throws(() => queue.restorePendingUsed([[6, 0], [7, 0], [0, 0]]), VirtioError);
      assert.equal(queue.pendingUsedEntries().length, 6);
      queue.restorePendingUsed([[6, 2], [7, 3]]);
      assert.deepEqual(queue.pendingUsedEntries().slice(6), [[6, 2], [7, 3]]);
      assert.throws(() => queue.restorePendingUsed([[0, 0]]), VirtioError, 'the ring is full');
    });

    it('a disposed queue refuses to restore', () => {
      const { queue } = setup(engine);
      queue.dispose();
      assert.throws(() => queue.restorePendingUsed([]), VirtioError);
    });
  });
}
