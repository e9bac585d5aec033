// PackedQueue.pendingUsedEntries / restorePendingUsed, what a durable backend journals for a packed
// ring: the used entries added but not flushed, given back to a queue rebuilt from the committed
// state(). Unlike a split ring's, a packed ring's slots return to the driver once it has seen a
// used descriptor, so the restore looks at each entry's slot: written again if the dead queue had
// not published it, passed over if it had (the driver may have put a new available descriptor
// there since). Each case ends with the driver holding every completion exactly once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as L from '../../assembly/packed-layout.js';
import type { PackedDriver } from '../../src/guest/packed-ring.js';
import { VirtioError } from '../../src/virtio/errors.js';
import { PackedQueue, type PackedQueueState, type PackedUsedEntry } from '../../src/virtio/packed-queue.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { LOW_BYTES, type Rig, makeRig, makeRing } from '../virtio/packed-fixture.js';

const SIZE = 8;
const DATA = LOW_BYTES / 2;

/** Buffers of one slot (a writable element) or two (a readable one, then a writable one). */
function offer(driver: PackedDriver, slots: number[], from: number): number[] {
  return slots.map((n, i) => {
    const w = { gpa: DATA + 64 * (from + i), len: 32 };
    const id = driver.add(n === 1 ? [] : [{ gpa: DATA + 4096 + 64 * i, len: 8 }], [w]);
    assert.notEqual(id, null);
    return id as number;
  });
}

interface Committed {
  rig: Rig;
  driver: PackedDriver;
  queue: PackedQueue;
  /** The queue's state and pending entries as a commit takes them (before the flush). */
  state: PackedQueueState;
  entries: PackedUsedEntry[];
  ids: number[];
}

/**
 * A first pass publishes and the driver collects three one-slot buffers; a second pass pops five
 * buffers of 1 or 2 slots (eight slots in all, so the used position crosses the ring's end) and
 * completes four of them out of order without flushing: the moment a durable backend commits.
 */
function committed(engine: KernelEngine): Committed {
  const rig = makeRig();
  const { driver, queue } = makeRing(rig, { size: SIZE }, engine);
  offer(driver, [1, 1, 1], 0);
  for (const c of queue.pop()) queue.addUsed(c, 4);
  queue.flush();
  assert.equal(driver.collectUsed().length, 3);
  const ids = offer(driver, [2, 1, 2, 1, 2], 10);
  const chains = queue.pop();
  assert.deepEqual(chains.map((c) => c.id), ids);
  queue.addUsed(chains[2], 7);
  queue.addUsed(chains[0], 32);
  queue.addUsed(chains[3], 0);
  queue.addUsed(chains[1], 1);
  const entries = queue.pendingUsedEntries();
  assert.deepEqual(entries, [[ids[2], 7, 2], [ids[0], 32, 2], [ids[3], 0, 1], [ids[1], 1, 1]]);
  return { rig, driver, queue, state: queue.state(), entries, ids };
}

/** The queue a restarted backend builds: from the committed state, the pending entries given back. */
function restored(c: Committed, engine: KernelEngine): { queue: PackedQueue; published: number } {
  c.queue.dispose();
  const queue = PackedQueue.fromState(c.rig.dm, structuredClone(c.state), engine);
  const published = queue.restorePendingUsed(structuredClone(c.entries));
  return { queue, published };
}

function ringBytes(c: Committed): Uint8Array {
  return c.rig.dm.guest.slice(c.driver.descGpa, SIZE * L.PDESC_BYTES);
}

const collected = (d: PackedDriver) => d.collectUsed().map((u) => [u.id, u.len]);

/** What the driver collects from the four committed entries: [id, length], in completion order. */
const committedOrder = ({ ids }: Committed) => [[ids[2], 7], [ids[0], 32], [ids[3], 0], [ids[1], 1]];

for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
  describe(`packed queue pending used entries [${engine}]`, () => {
    it('not published when the backend died: the restored queue publishes what the first would have, byte for byte', () => {
      const direct = committed(engine);
      direct.queue.flush();
      const c = committed(engine);
      const r = restored(c, engine);
      assert.equal(r.published, 0);
      assert.deepEqual(r.queue.pendingUsedEntries(), c.entries);
      r.queue.flush();
      assert.deepEqual(ringBytes(c), ringBytes(direct));
      const got = collected(c.driver);
      assert.deepEqual(got, committedOrder(c));
      assert.deepEqual(collected(direct.driver), got);
      const s = r.queue.state();
      assert.deepEqual([s.nextUsed, s.usedWrap, s.inflightSlots], [1, 0, 2], 'past the ring end, the fifth buffer still in flight');
    });

    it('published, not yet collected: passed over, nothing written again, each completion seen once', () => {
      const c = committed(engine);
      c.queue.flush();
      const before = ringBytes(c);
      const r = restored(c, engine);
      assert.equal(r.published, 4);
      assert.deepEqual(r.queue.pendingUsedEntries(), []);
      assert.equal(r.queue.flush(), false);
      assert.deepEqual(ringBytes(c), before);
      assert.deepEqual(collected(c.driver), committedOrder(c));
      assert.deepEqual(collected(c.driver), []);
      const s = r.queue.state();
      assert.deepEqual([s.nextUsed, s.usedWrap, s.inflightSlots], [1, 0, 2]);
    });

    it('published, collected and the slots offered again: the new available descriptors survive and are popped next', () => {
      const c = committed(engine);
      c.queue.flush();
      assert.equal(collected(c.driver).length, 4);
      const again = offer(c.driver, [1, 2, 1], 20);
      const before = ringBytes(c);
      const r = restored(c, engine);
      assert.equal(r.published, 4);
      r.queue.flush();
      assert.deepEqual(ringBytes(c), before, 'the driver\'s new descriptors are untouched');
      assert.deepEqual(collected(c.driver), []);
      const chains = r.queue.pop();
      assert.deepEqual(chains.map((ch) => ch.id), again);
      for (const ch of chains) r.queue.addUsed(ch, 5);
      r.queue.flush();
      assert.deepEqual(collected(c.driver), again.map((id) => [id, 5]));
    });

    it('a flush cut short before its first descriptor\'s flags: none counts as published, all are written again', () => {
      const direct = committed(engine);
      direct.queue.flush();
      const c = committed(engine);
      // The flush writes every descriptor but the first, whose flags it stores last; put them back.
      const head = c.rig.dm.guest.translate(c.driver.descGpa, SIZE * L.PDESC_BYTES) + c.state.nextUsed * L.PDESC_BYTES + L.PDESC_FLAGS;
      const view = new DataView(c.rig.dm.memory.buffer);
      const unpublished = view.getUint16(head, true);
      c.queue.flush();
      view.setUint16(head, unpublished, true);
      assert.deepEqual(collected(c.driver), [], 'the driver sees nothing past an unpublished head');
      const r = restored(c, engine);
      assert.equal(r.published, 0);
      r.queue.flush();
      assert.deepEqual(ringBytes(c), ringBytes(direct));
      assert.deepEqual(collected(c.driver), committedOrder(c));
    });

    it('refuses ids outside the ring, bad lengths and slot counts, and more slots than are in flight, changing nothing', () => {
      const c = committed(engine);
      c.queue.dispose();
      const queue = PackedQueue.fromState(c.rig.dm, structuredClone(c.state), engine);
      const refuse = (entries: [number, number, number][], what: string) => {
        assert.throws(() => queue.restorePendingUsed(entries), VirtioError, what);
        assert.deepEqual(queue.pendingUsedEntries(), [], `${what}: nothing added`);
        assert.deepEqual(queue.state(), c.state, `${what}: the queue did not move`);
      };
      refuse([[SIZE, 0, 1]], 'id = ring size');
      refuse([[-1, 0, 1]], 'negative id');
      refuse([[1.5, 0, 1]], 'fractional id');
      refuse([[Number.NaN, 0, 1]], 'NaN id');
      refuse([[0, -1, 1]], 'negative length');
      refuse([[0, 2 ** 32, 1]], 'length above 32 bits');
      refuse([[0, 0, 0]], 'no slots');
      refuse([[0, 0, SIZE + 1]], 'more slots than the ring');
      refuse([[0, 0, 2], [1, 0, 2], [2, 0, 2], [3, 0, 2], [4, 0, 1]], 'more slots than are in flight (8)');
      refuse([[0, 4, 1], [1, 4, 1], [SIZE + 3, 4, 1]], 'a bad entry after good ones');
      refuse(Array.from({ length: SIZE + 1 }, (_, i): [number, number, number] => [i % SIZE, 0, 1]), 'more entries than the ring');
      assert.equal(queue.restorePendingUsed([[SIZE - 1, 0xffff_ffff, 8]]), 0);
      assert.deepEqual(queue.pendingUsedEntries(), [[SIZE - 1, 0xffff_ffff, 8]], 'the largest id, length and slot count are accepted');
    });
  });
}
