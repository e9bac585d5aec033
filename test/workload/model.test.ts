// The reference model's closed form against a step-by-step replay of the schedule: for random
// configurations and operation counts, executing every operation in order on two plain byte
// arrays gives exactly the bytes expectedArea() predicts. Also the model catches a flipped byte.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type WorkloadConfig, qpRegions } from '../../src/workload/config.js';
import { compareArea, expectedArea } from '../../src/workload/model.js';
import { Stream, fillPayload, payloadKey } from '../../src/workload/pattern.js';
import { OpKind, countOf, lastInSlot, messagesOf, opKind, opSeq } from '../../src/workload/schedule.js';

/** Run every operation of both sides in order on two areas, as the NICs would. */
function replay(c: WorkloadConfig, ops: [number[], number[]]): [Uint8Array, Uint8Array] {
  const r = qpRegions(c);
  const areas = [new Uint8Array(r.blockBytes * c.qps), new Uint8Array(r.blockBytes * c.qps)];
  const M = c.messageBytes;
  const slot = (side: number, q: number, region: number, s: number, bytes = M) => areas[side].subarray(q * r.blockBytes + region + s * bytes, q * r.blockBytes + region + (s + 1) * bytes);
  for (let side = 0; side < 2; side++) {
    for (let q = 0; q < c.qps; q++) for (let s = 0; s < c.slots; s++) fillPayload(slot(side, q, r.readSrc, s), payloadKey(c.seed, side, q, Stream.Read, s));
  }
  for (let side = 0; side < 2; side++) {
    const peer = 1 - side;
    for (let q = 0; q < c.qps; q++) {
      let message = 0;
      for (let j = 0; j < ops[side][q]; j++) {
        const k = opSeq(j);
        const s = k % c.slots;
        switch (opKind(j)) {
          case OpKind.WriteImm:
            fillPayload(slot(side, q, r.writeSrc, s), payloadKey(c.seed, side, q, Stream.Write, k));
            slot(peer, q, r.writeDst, s).set(slot(side, q, r.writeSrc, s));
            message++;
            break;
          case OpKind.Send:
            fillPayload(slot(side, q, r.sendSrc, s), payloadKey(c.seed, side, q, Stream.Send, k));
            slot(peer, q, r.recvDst, message % c.slots).set(slot(side, q, r.sendSrc, s));
            message++;
            break;
          case OpKind.Read:
            slot(side, q, r.readDst, s).set(slot(peer, q, r.readSrc, s));
            break;
          case OpKind.FetchAdd: {
            const counter = new DataView(areas[peer].buffer, q * r.blockBytes + r.counter, 8);
            const old = counter.getBigUint64(0, true);
            counter.setBigUint64(0, old + 1n, true);
            new DataView(slot(side, q, r.faResult, s, 8).buffer, q * r.blockBytes + r.faResult + 8 * s, 8).setBigUint64(0, old, true);
            break;
          }
        }
      }
    }
  }
  return [areas[0], areas[1]];
}

const configArb = fc.record({
  qps: fc.integer({ min: 1, max: 3 }),
  messageBytes: fc.integer({ min: 8, max: 70 }),
  slots: fc.integer({ min: 1, max: 5 }).map((n) => 2 * n),
  window: fc.constant(1),
  recvDepth: fc.constant(1),
  seed: fc.nat(),
});

describe('workload reference model', () => {
  it('predicts the bytes a step-by-step replay produces', () => {
    fc.assert(
      fc.property(configArb, fc.array(fc.nat(60), { minLength: 6, maxLength: 6 }), (c, counts) => {
        const ops: [number[], number[]] = [counts.slice(0, c.qps), counts.slice(3, 3 + c.qps)];
        const [a, b] = replay(c, ops);
        assert.deepEqual(expectedArea(c, 0, ops[0], ops[1]), a);
        assert.deepEqual(expectedArea(c, 1, ops[1], ops[0]), b);
      }),
      { numRuns: 150 },
    );
  });

  it('names the region of the first differing byte', () => {
    const c: WorkloadConfig = { qps: 2, messageBytes: 64, slots: 4, window: 2, recvDepth: 2, seed: 5 };
    const ops = [13, 9];
    const peer = [7, 22];
    const have = expectedArea(c, 0, ops, peer);
    assert.equal(compareArea(c, 0, ops, peer, have), null);
    const r = qpRegions(c);
    have[r.blockBytes + r.recvDst + 70] ^= 1;
    assert.deepEqual(compareArea(c, 0, ops, peer, have), { qp: 1, region: 'recvDst', offsetBytes: 70, want: have[r.blockBytes + r.recvDst + 70] ^ 1, have: have[r.blockBytes + r.recvDst + 70] });
    // One operation more or less on either side changes the prediction.
    assert.notEqual(compareArea(c, 0, [13, 10], peer, expectedArea(c, 0, ops, peer)), null);
    assert.notEqual(compareArea(c, 0, ops, [7, 21], expectedArea(c, 0, ops, peer)), null);
  });
});

describe('workload schedule', () => {
  it('counts each kind and the messages among the first n operations', () => {
    fc.assert(
      fc.property(fc.nat(10_000), (n) => {
        const byKind = [0, 0, 0, 0];
        for (let j = 0; j < n; j++) byKind[opKind(j)]++;
        assert.deepEqual([0, 1, 2, 3].map((k) => countOf(k as OpKind, n)), byKind);
        assert.equal(messagesOf(n), byKind[0] + byKind[1]);
      }),
    );
  });

  it('finds the last sequence number in a slot', () => {
    fc.assert(
      fc.property(fc.nat(500), fc.integer({ min: 1, max: 20 }), fc.nat(19), (count, slots, s0) => {
        const s = s0 % slots;
        let want = -1;
        for (let k = 0; k < count; k++) if (k % slots === s) want = k;
        assert.equal(lastInSlot(count, s, slots), want);
      }),
    );
  });
});
