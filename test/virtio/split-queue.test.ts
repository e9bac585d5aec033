import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SplitRingDriver } from '../../src/guest/split-ring.js';
import { Arena } from '../../src/memory/arena.js';
import { gpa } from '../../src/memory/gpa.js';
import { VirtioError } from '../../src/virtio/errors.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { SplitQueue, type SplitQueueState } from '../../src/virtio/split-queue.js';
import { ST_BAD_RING, ST_OUT_OF_RANGE } from '../../src/wasm/status.js';
import { DATA_AREA, REGION_B, REGION_BYTES, RING_AREA, hostileMemory } from '../fuzz/split-rings.js';

const ENGINES: KernelEngine[] = ['wasm', 'ts'];

function setup(engine: KernelEngine, size: number, eventIdx: boolean) {
  const dm = hostileMemory();
  const alloc = new Arena(RING_AREA, DATA_AREA - RING_AREA);
  const driver = SplitRingDriver.create<number>(dm.guest, alloc, { size, eventIdx, indirectDesc: true });
  const queue = SplitQueue.fromState(dm, driver.initialDeviceState(), engine);
  return { dm, driver, queue };
}

for (const engine of ENGINES) {
  describe(`split queue round trips [${engine}]`, () => {
    it('moves requests and replies through direct and indirect chains, across the 16-bit wrap', () => {
      const { dm, driver, queue } = setup(engine, 8, true);
      const g = dm.guest;
      let sent = 0;
      let received = 0;
      const total = 0x10000 + 100;
      while (received < total) {
        let added = 0;
        while (sent < total && added < 3) {
          // Request at DATA_AREA + 32*slot split over two readable buffers (one in high memory),
          // reply into a writable buffer; every third chain goes through an indirect table.
          const slot = sent % 8;
          const req = gpa(DATA_AREA + 32 * slot);
          const high = gpa(REGION_B + 16 * slot);
          g.writeU32(req, sent);
          g.writeU32(high, ~sent >>> 0);
          const head = driver.add([{ gpa: req, len: 4 }, { gpa: high, len: 4 }, { gpa: req, len: 0 }], [{ gpa: req + 16, len: 8 }], sent, sent % 3 === 0);
          if (head < 0) break;
          sent++;
          added++;
        }
        driver.publish();
        for (const chain of queue.pop()) {
          assert.equal(chain.readSegments, 2); // the zero-length buffer gives no segment
          assert.equal(chain.writeSegments, 1);
          assert.equal(chain.readBytes, 8);
          const body = chain.reader(g.bytes).readExact(8);
          assert.ok(body);
          const view = new DataView(body.buffer);
          const seq = view.getUint32(0, true);
          assert.equal(view.getUint32(4, true), ~seq >>> 0);
          assert.equal(chain.segment(1).gpa, REGION_B + 16 * (seq % 8));
          const reply = new Uint8Array(8);
          new DataView(reply.buffer).setUint32(0, seq * 2, true);
          const w = chain.writer(g.bytes);
          w.write(reply);
          queue.addUsed(chain, w.written);
        }
        queue.flush();
        for (const used of driver.collect()) {
          assert.equal(used.token, received);
          assert.equal(used.len, 8);
          assert.equal(g.readU32(gpa(DATA_AREA + 32 * (received % 8) + 16)), received * 2);
          received++;
        }
      }
      assert.equal(driver.numFree, 8);
      const state = queue.state();
      assert.equal(state.nextAvail, total & 0xffff);
      assert.equal(state.nextUsed, total & 0xffff);
    });

    it('survives a save and restore through state()/fromState with chains in flight', () => {
      const { dm, driver, queue } = setup(engine, 4, true);
      for (let i = 0; i < 3; i++) driver.add([], [{ gpa: DATA_AREA + 64 * i, len: 16 }], i);
      driver.publish();
      const first = queue.pop(2);
      assert.deepEqual(first.map((c) => c.id), [0, 1]);
      queue.addUsed(first[0], 16);
      queue.flush();
      const state: SplitQueueState = queue.state();
      assert.deepEqual({ nextAvail: state.nextAvail, nextUsed: state.nextUsed }, { nextAvail: 2, nextUsed: 1 });
      queue.dispose();
      const restored = SplitQueue.fromState(dm, JSON.parse(JSON.stringify(state)), engine);
      const rest = restored.pop();
      assert.deepEqual(rest.map((c) => c.id), [2]);
      // Chain 1 was popped before the save; the device completes it from its own records.
      restored.addUsed(rest[0], 4);
      assert.equal(restored.flush(), true, 'the first push after a restore always notifies');
      assert.deepEqual(driver.collect().map((u) => [u.token, u.len]), [[0, 16], [2, 4]]);
      restored.dispose();
      assert.equal(dm.arena.usedBytes(), 0);
    });
  });

  describe(`split queue notification suppression [${engine}]`, () => {
    it('event idx: used_event limits calls, avail_event limits kicks', () => {
      const { driver, queue } = setup(engine, 8, true);
      const add = (n: number) => {
        for (let i = 0; i < n; i++) driver.add([], [{ gpa: DATA_AREA, len: 8 }], i);
      };
      // Kicks: avail_event starts at 0, so the first publish kicks and the next does not.
      add(1);
      assert.equal(driver.publish(), true);
      add(1);
      assert.equal(driver.publish(), false);
      const chains = queue.pop();
      assert.equal(chains.length, 2);
      assert.equal(queue.enableNotification(), false);
      add(2);
      assert.equal(driver.publish(), true, 'avail_event was moved to the next slot');
      add(1);
      assert.equal(driver.publish(), false);
      assert.equal(queue.enableNotification(), true, 'buffers arrived since the last pop');
      // Calls: the driver asks for a call at used idx 0 -> 1.
      assert.equal(driver.enableCallbacks(), false);
      queue.addUsed(chains[0], 0);
      assert.equal(queue.flush(), true);
      queue.addUsed(chains[1], 0);
      assert.equal(queue.flush(), false, 'used_event is behind: no second call');
      assert.equal(driver.collect().length, 2);
      assert.equal(driver.enableCallbacks(), false);
      const more = queue.pop();
      assert.equal(more.length, 3);
      for (const c of more) queue.addUsed(c, 0);
      assert.equal(queue.flush(), true, 'a batch crossing used_event calls once');
      queue.addUsed(more[0], 0);
      assert.throws(() => queue.flush(), VirtioError, 'pushing more than was popped breaks the queue');
    });

    it('flags: NO_INTERRUPT and NO_NOTIFY without event idx', () => {
      const { driver, queue } = setup(engine, 8, false);
      driver.add([], [{ gpa: DATA_AREA, len: 8 }], 0);
      assert.equal(driver.publish(), true);
      queue.disableNotification();
      driver.add([], [{ gpa: DATA_AREA, len: 8 }], 1);
      assert.equal(driver.publish(), false);
      assert.equal(queue.enableNotification(), true);
      driver.add([], [{ gpa: DATA_AREA, len: 8 }], 2);
      assert.equal(driver.publish(), true);
      const chains = queue.pop();
      driver.disableCallbacks();
      queue.addUsed(chains[0], 1);
      assert.equal(queue.flush(), false);
      assert.equal(driver.enableCallbacks(), true);
      queue.addUsed(chains[1], 1);
      assert.equal(queue.flush(), true);
    });
  });
}

describe('SplitQueue.fromState', () => {
  const { dm, driver } = setup('wasm', 16, false);
  const good = driver.initialDeviceState();
  const refuse = (change: Partial<SplitQueueState>, status = ST_BAD_RING) =>
    assert.throws(
      () => SplitQueue.fromState(dm, { ...good, ...change }, 'ts'),
      (e: unknown) => e instanceof VirtioError && e.status === status,
      JSON.stringify(change),
    );

  it('accepts a sane state and frees its arena blocks on dispose', () => {
    const before = dm.arena.usedBytes();
    const q = SplitQueue.fromState(dm, good, 'wasm');
    assert.deepEqual(q.state(), good);
    q.dispose();
    assert.equal(dm.arena.usedBytes(), before);
    assert.equal(q.broken, true);
  });

  it('refuses bad sizes, misaligned rings, rings outside memory and bad indices', () => {
    for (const size of [0, 3, 24, 65536, 1.5, -2]) refuse({ size });
    refuse({ descGpa: good.descGpa + 8 });
    refuse({ availGpa: good.availGpa + 1 });
    refuse({ usedGpa: good.usedGpa + 2 });
    refuse({ usedGpa: REGION_BYTES - 8 }, ST_OUT_OF_RANGE); // runs off region A
    refuse({ descGpa: REGION_BYTES + 4096 }, ST_OUT_OF_RANGE); // the hole
    refuse({ descGpa: -16 });
    refuse({ descGpa: 2 ** 60 });
    refuse({ nextAvail: 0x10000 });
    refuse({ nextUsed: -1 });
    refuse({ nextAvail: 17, nextUsed: 0 });
    refuse({ nextAvail: 5, nextUsed: 6 });
    refuse({ eventIdx: 1 as unknown as boolean });
    assert.equal(SplitQueue.fromState(dm, { ...good, nextAvail: 3, nextUsed: 0xfff5 }, 'ts').state().nextUsed, 0xfff5);
  });
});
