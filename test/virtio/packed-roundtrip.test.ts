import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { GuestBuffer } from '../../src/guest/packed-ring.js';
import { gpa } from '../../src/memory/gpa.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { HIGH_GPA, allowedRanges, makeRig, makeRing, plantCanaries } from './packed-fixture.js';

const engines: KernelEngine[] = ['wasm', 'ts'];

interface Sent {
  readable: Uint8Array[];
  writableLens: number[];
  /** Data buffers to give back once the buffer is used. */
  allocations: number[];
}

/** Deterministic bytes for buffer `n`. */
function pattern(n: number, len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (n * 31 + i * 7) & 0xff);
}

for (const engine of engines) {
  describe(`packed ring round trip [${engine}]`, () => {
    it('moves data both ways, in and out of order, direct and indirect, wrapping many times', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(1, 2, 3, 8, 17, 64),
          fc.boolean(),
          fc.integer({ min: 1, max: 2 ** 31 - 1 }),
          (size, eventIdx, seed) => {
            const rig = makeRig();
            const { driver, queue } = makeRing(rig, { size, eventIdx, indirect: true }, engine);
            const check = plantCanaries(rig, allowedRanges(rig, queue));
            let rnd = seed;
            const next = (n: number) => {
              rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
              return (rnd >>> 8) % n;
            };
            const sent = new Map<number, Sent>();
            const written = new Map<number, number>();
            let serial = 0;
            let completed = 0;
            const target = 12 * size + 20;
            while (completed < target) {
              // Driver: add a few buffers while there is room.
              for (let k = next(4); k >= 0; k--) {
                const maxElems = Math.min(size, 4);
                const nr = next(maxElems + 1);
                const nw = Math.max(nr === 0 ? 1 : 0, next(maxElems + 1 - nr));
                const indirect = next(3) === 0;
                const readable: GuestBuffer[] = [];
                const writable: GuestBuffer[] = [];
                const data: Uint8Array[] = [];
                const wl: number[] = [];
                const id0 = serial++;
                for (let i = 0; i < nr; i++) {
                  const len = next(3) === 0 ? 0 : 1 + next(100);
                  const at = len === 0 ? 0 : rig.data.alloc(len, 1);
                  const bytes = pattern(id0 * 8 + i, len);
                  if (len > 0) rig.dm.guest.write(gpa(at), bytes);
                  readable.push({ gpa: at, len });
                  data.push(bytes);
                }
                for (let i = 0; i < nw; i++) {
                  const len = 1 + next(100);
                  // Some writable buffers live in the high region, above 4 GiB.
                  const at = next(2) === 0 ? HIGH_GPA + next(60000) : rig.data.alloc(len, 1);
                  writable.push({ gpa: at, len });
                  wl.push(len);
                }
                const id = driver.add(readable, writable, indirect && nr + nw <= size);
                const allocations = [...readable, ...writable].filter((b) => b.len > 0 && b.gpa < HIGH_GPA).map((b) => b.gpa);
                if (id === null) {
                  for (const at of allocations) rig.data.release(at);
                  serial--;
                  break;
                }
                sent.set(id, { readable: data, writableLens: wl, allocations });
              }
              if (driver.needsKick() || next(2) === 0) {
                // Device: pop everything, check the readable bytes, answer, complete in a shuffled order.
                const chains = queue.pop();
                const done: Array<{ chain: (typeof chains)[number]; n: number }> = [];
                for (const chain of chains) {
                  const s = sent.get(chain.id);
                  assert.ok(s, `popped id ${chain.id} was not sent`);
                  const expect = Buffer.concat(s.readable);
                  assert.equal(chain.readBytes, expect.length);
                  assert.deepEqual(chain.reader(rig.dm.guest.bytes).readExact(expect.length), new Uint8Array(expect));
                  const wb = s.writableLens.reduce((a, b) => a + b, 0);
                  assert.equal(chain.writeBytes, wb);
                  const n = next(wb + 1);
                  assert.equal(chain.writer(rig.dm.guest.bytes).write(pattern(1000 + chain.id, n)), n);
                  done.push({ chain, n });
                }
                for (let i = done.length - 1; i > 0; i--) {
                  const j = next(i + 1);
                  [done[i], done[j]] = [done[j], done[i]];
                }
                for (const { chain, n } of done) {
                  queue.addUsed(chain, n);
                  written.set(chain.id, n);
                }
                queue.flush();
              }
              for (const u of driver.collectUsed()) {
                const s = sent.get(u.id);
                assert.ok(s, `used id ${u.id} was not in flight`);
                assert.equal(u.len, written.get(u.id));
                for (const at of s.allocations) rig.data.release(at);
                sent.delete(u.id);
                completed++;
              }
            }
            // Drain: everything still available is popped, used and collected. A pop returns fewer
            // chains than are available when its record buffer fills (long indirect chains), so
            // pop until nothing is left.
            for (let chains = queue.pop(); chains.length > 0; chains = queue.pop()) {
              for (const chain of chains) queue.addUsed(chain, 0);
            }
            queue.flush();
            driver.collectUsed();
            assert.equal(driver.freeSlotCount, size);
            assert.equal(queue.state().inflightSlots, 0);
            assert.equal(queue.broken, false);
            assert.deepEqual(check.check(), []);
            queue.dispose();
            driver.dispose();
          },
        ),
        { numRuns: 25, includeErrorInReport: true },
      );
    });

    it('keeps wrap counters in step over many laps of full-ring chains', () => {
      const rig = makeRig();
      const size = 5;
      const { driver, queue } = makeRing(rig, { size }, engine);
      const buf = rig.data.alloc(64, 16);
      let slots = 0;
      for (let lap = 0; lap < 40; lap++) {
        // A chain as long as the ring, then single-slot ones: every lap starts at another slot.
        const chainLen = lap % 2 === 0 ? size : 1 + (lap % 3);
        slots += chainLen;
        const id = driver.add(Array.from({ length: chainLen }, () => ({ gpa: buf, len: 8 })), []);
        assert.notEqual(id, null);
        const [chain] = queue.pop();
        assert.equal(chain.descCount, chainLen);
        assert.equal(chain.readSegments, chainLen);
        queue.addUsed(chain, 0);
        queue.flush();
        assert.deepEqual(driver.collectUsed(), [{ id, len: 0 }]);
      }
      const st = queue.state();
      assert.equal(st.inflightSlots, 0);
      assert.equal(st.nextAvail, st.nextUsed);
      assert.equal(st.availWrap, st.usedWrap);
      assert.ok(slots / size > 20, 'the ring wrapped many times');
      assert.equal(st.nextAvail, slots % size);
      assert.equal(st.availWrap, 1 ^ (Math.floor(slots / size) & 1));
    });
  });
}
