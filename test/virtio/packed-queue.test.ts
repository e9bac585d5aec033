import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackedDriver } from '../../src/guest/packed-ring.js';
import { VirtioError } from '../../src/virtio/errors.js';
import { PackedQueue, type PackedQueueState } from '../../src/virtio/packed-queue.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import * as S from '../../src/wasm/status.js';
import { HIGH_BYTES, HIGH_GPA, LOW_BYTES, type Rig, makeRig, makeRing } from './packed-fixture.js';

const BUF = { gpa: LOW_BYTES / 2, len: 16 };

/** Pop everything and complete it at once; returns whether the driver asked for a notification. */
function completeAll(queue: PackedQueue): boolean {
  for (const c of queue.pop()) queue.addUsed(c, 0);
  return queue.flush();
}

/** Add `n` one-slot buffers, then pop and complete them one flush at a time; the notify results. */
function oneByOne(driver: PackedDriver, queue: PackedQueue, n: number): boolean[] {
  for (let i = 0; i < n; i++) assert.notEqual(driver.add([BUF], []), null);
  const chains = queue.pop();
  return chains.map((c) => {
    queue.addUsed(c, 0);
    return queue.flush();
  });
}

for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
  describe(`packed queue event suppression [${engine}]`, () => {
    it('used notifications: ENABLE notifies every flush, DISABLE never', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 8 }, engine);
      assert.deepEqual(oneByOne(driver, queue, 3), [true, true, true]);
      driver.disableUsedNotify();
      assert.deepEqual(oneByOne(driver, queue, 3), [false, false, false]);
      assert.equal(driver.enableUsedNotify(), true, 'used buffers were already waiting');
      assert.equal(driver.collectUsed().length, 6);
      assert.equal(driver.enableUsedNotify(), false);
      assert.deepEqual(oneByOne(driver, queue, 2), [true, true]);
    });

    it('used notifications with EVENT_IDX fire exactly when the named slot is used, across the ring end', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 8, eventIdx: true }, engine);
      // The first check has nothing to compare with, so it notifies (as if nothing was signalled).
      assert.deepEqual(oneByOne(driver, queue, 1), [true]);
      driver.collectUsed();
      for (let round = 0; round < 6; round++) {
        // Ask to hear when the third slot from here is used: flushes 1 and 2 stay quiet.
        driver.enableUsedNotify(2);
        assert.deepEqual(oneByOne(driver, queue, 5), [false, false, true, false, false], `round ${round}`);
        driver.collectUsed();
      }
      // One flush covering the event slot notifies once.
      driver.enableUsedNotify(3);
      for (let i = 0; i < 5; i++) driver.add([BUF], []);
      assert.equal(completeAll(queue), true);
      driver.collectUsed();
      // An event offset past the ring never fires; DESC without EVENT_IDX means ENABLE (tested below).
      new DataView(rig.dm.memory.buffer).setUint32(rig.dm.guest.translate(driver.driverEventGpa, 4), (2 << 16) | 100, true);
      assert.deepEqual(oneByOne(driver, queue, 2), [false, false]);
    });

    it('DESC mode without EVENT_IDX negotiated is treated as ENABLE', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 8 }, engine);
      new DataView(rig.dm.memory.buffer).setUint32(rig.dm.guest.translate(driver.driverEventGpa, 4), (2 << 16) | 5, true);
      assert.deepEqual(oneByOne(driver, queue, 2), [true, true]);
    });

    it('available notifications: disable, enable, and enable reporting buffers already there', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 8 }, engine);
      driver.add([BUF], []);
      assert.equal(driver.needsKick(), true, 'a fresh ring has notifications enabled');
      queue.disableNotification();
      driver.add([BUF], []);
      assert.equal(driver.needsKick(), false);
      assert.equal(queue.enableNotification(), true, 'two buffers are waiting');
      assert.equal(completeAll(queue), true);
      assert.equal(queue.enableNotification(), false);
      driver.add([BUF], []);
      assert.equal(driver.needsKick(), true);
      assert.equal(driver.needsKick(), false, 'nothing new since the last kick');
    });

    it('available notifications with EVENT_IDX: kick only for the slot the device will look at next', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 4, eventIdx: true }, engine);
      for (let round = 0; round < 5; round++) {
        assert.equal(queue.enableNotification(), false);
        driver.add([BUF], []);
        assert.equal(driver.needsKick(), true, `round ${round}: the device waits on this slot`);
        driver.add([BUF], [BUF]);
        assert.equal(driver.needsKick(), false, `round ${round}: the device has been told already`);
        completeAll(queue);
        driver.collectUsed();
      }
    });
  });

  describe(`packed queue state [${engine}]`, () => {
    function refuses(rig: Rig, state: PackedQueueState, status = S.ST_BAD_RING): void {
      const before = rig.dm.arena.usedBytes();
      assert.throws(() => PackedQueue.fromState(rig.dm, state, engine), (e: unknown) => e instanceof VirtioError && e.status === status);
      assert.equal(rig.dm.arena.usedBytes(), before, 'nothing allocated for a refused state');
    }

    it('fromState refuses bad states', () => {
      const rig = makeRig();
      const driver = new PackedDriver(rig.dm.guest, rig.ram, { size: 8 });
      const good = driver.deviceState();
      for (const size of [0, 32769, 1.5, -1, NaN]) refuses(rig, { ...good, size });
      refuses(rig, { ...good, descGpa: good.descGpa + 8 });
      refuses(rig, { ...good, driverEventGpa: good.driverEventGpa + 2 });
      refuses(rig, { ...good, deviceEventGpa: good.deviceEventGpa + 1 });
      refuses(rig, { ...good, descGpa: LOW_BYTES - 64 }, S.ST_OUT_OF_RANGE);
      refuses(rig, { ...good, descGpa: HIGH_GPA + HIGH_BYTES - 64, size: 8 }, S.ST_OUT_OF_RANGE);
      refuses(rig, { ...good, deviceEventGpa: LOW_BYTES + 4096 }, S.ST_OUT_OF_RANGE);
      refuses(rig, { ...good, descGpa: -16 });
      refuses(rig, { ...good, availWrap: 2 });
      refuses(rig, { ...good, usedWrap: -1 });
      refuses(rig, { ...good, signalWrap: 3 });
      refuses(rig, { ...good, nextAvail: 8, nextUsed: 8 });
      refuses(rig, { ...good, signalSlot: 9 });
      refuses(rig, { ...good, inflightSlots: 9 });
      refuses(rig, { ...good, inflightSlots: 1 }, S.ST_BAD_RING);
      refuses(rig, { ...good, nextAvail: 3 });
      refuses(rig, { ...good, eventIdx: 1 as unknown as boolean });
      // The largest queue is fine; the ring fits the low region.
      assert.equal(PackedQueue.fromState(rig.dm, { ...good, size: 32768, descGpa: 0 }, engine).size, 32768);
    });

    it('state() round-trips through fromState and the queue carries on', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 4, eventIdx: true, indirect: true }, engine);
      for (let i = 0; i < 7; i++) {
        driver.add([BUF], [BUF], i % 2 === 0);
        completeAll(queue);
        driver.collectUsed();
      }
      driver.add([BUF], []);
      driver.add([BUF, BUF], []);
      const [first] = queue.pop(1);
      queue.addUsed(first, 0);
      queue.flush();
      const state = queue.state();
      assert.equal(state.inflightSlots, 0);
      const arenaBefore = rig.dm.arena.usedBytes();
      queue.dispose();
      assert.ok(rig.dm.arena.usedBytes() < arenaBefore, 'dispose() gave the arena blocks back');
      const again = PackedQueue.fromState(rig.dm, structuredClone(state), engine);
      assert.deepEqual(again.state(), state);
      const [second] = again.pop();
      assert.equal(second.descCount, 2);
      again.addUsed(second, 0);
      again.flush();
      assert.equal(driver.collectUsed().length, 2);
    });

    it('addUsed refuses a written length beyond the chain, and a pop with nothing available is empty', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 4 }, engine);
      assert.deepEqual(queue.pop(), []);
      driver.add([BUF], [BUF]);
      const [c] = queue.pop();
      assert.throws(() => queue.addUsed(c, 17), RangeError);
      queue.addUsed(c, 16);
      assert.equal(queue.flush(), true);
      assert.deepEqual(driver.collectUsed(), [{ id: c.id, len: 16 }]);
      assert.equal(queue.broken, false);
    });
  });
}
