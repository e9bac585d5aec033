// Go-back-N, duplicate detection and RNR under a bad network (R8): both directions drop,
// duplicate, reorder and delay the same fraction of packets (1%, 5%, 10%), chosen by a seeded
// PRNG. A mixed workload of SENDs, WRITEs, READs and fetch-adds must complete exactly once per
// work request, successfully, with every byte where it belongs and the counter exact.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpa } from '../../../src/memory/index.js';
import { LossyLink } from '../../../src/net/lossy.js';
import { PathMtu, WcOpcode, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr } from '../../../src/nic/verbs.js';
import { BUF_GPA, BUF_IOVA, KiB, MiB, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern, settle } from './fixtures.js';

// Every work request has its own source and destination slot, so none overwrites another.
const SLOT = 16 * KiB;
/** Set VRDMA_LOSSY_SEED to replay or explore other network behaviours. */
const SEED = Number(process.env.VRDMA_LOSSY_SEED ?? 17);

for (const rate of [0.01, 0.05, 0.1]) {
  describe(`lossy network at ${rate * 100}%`, () => {
    it('completes every work request exactly once with every byte right', async () => {
      const lossy = { drop: rate, duplicate: rate, reorder: rate, delay: rate, maxDelayMs: 3, seed: Math.round(rate * 1000) + SEED };
      const { a, b } = pair({ lossy: { ...lossy } }, { lossy: { ...lossy, seed: lossy.seed + 1 } });
      const [qa, qb] = connectRc(a, b, { mtu: PathMtu.Mtu1024, timeout: 9, retryCnt: 7, rnrRetry: 7, minRnrTimer: 1 });
      const random = (n: number, seed: number): number => (Math.imul(seed + 1, 2654435761) >>> 0) % n;
      const wrs: SendWr[] = [];
      const expected: { kind: WcOpcode; check: () => void }[] = [];
      const sends: number[] = [];
      let reads = 0;
      const fetchAdds = 40;
      for (let i = 0; i < 100; i++) {
        const len = random(12 * KiB, i) + (i % 7 === 0 ? 0 : 1);
        const kind = i % 10 < 4 ? 'send' : i % 10 < 7 ? 'write' : i % 10 < 9 ? 'read' : 'fetch-add';
        const src = i * SLOT;
        if (kind === 'send') {
          const data = pattern(len, i + 1);
          fill(a, src, data);
          const dst = sends.length * SLOT;
          sends.push(len);
          b.dev.postRecv(qb, [{ wrId: BigInt(i), sgList: [{ addr: BUF_IOVA + dst, length: SLOT, lkey: b.mr.lkey }] }]);
          wrs.push({ wrId: BigInt(i), opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA + src, length: len, lkey: a.mr.lkey }] });
          expected.push({ kind: WcOpcode.Send, check: () => {} });
        } else if (kind === 'write') {
          const data = pattern(len, i + 1);
          fill(a, src, data);
          const dst = MiB + i * SLOT;
          wrs.push({ wrId: BigInt(i), opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA + src, length: len, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + dst, rkey: b.mr.rkey });
          expected.push({ kind: WcOpcode.RdmaWrite, check: () => assert.ok(Buffer.from(bytesAt(b, dst, len)).equals(Buffer.from(data)), `WRITE ${i} bytes`) });
        } else if (kind === 'read') {
          const data = pattern(len, 1000 + i);
          const from = 3 * MiB + reads * SLOT;
          reads++;
          fill(b, from, data);
          const dst = 2 * MiB + i * SLOT;
          wrs.push({ wrId: BigInt(i), opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA + dst, length: len, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + from, rkey: b.mr.rkey });
          expected.push({ kind: WcOpcode.RdmaRead, check: () => assert.ok(Buffer.from(bytesAt(a, dst, len)).equals(Buffer.from(data)), `READ ${i} bytes`) });
        } else {
          wrs.push({ wrId: BigInt(i), opcode: WrOpcode.AtomicFetchAndAdd, flags: 0, sgList: [{ addr: BUF_IOVA + 4 * MiB - 8 * (i + 1), length: 8, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 4 * MiB - 8, rkey: b.mr.rkey, compareAdd: 5n });
          expected.push({ kind: WcOpcode.FetchAdd, check: () => {} });
        }
      }
      // Fetch-adds at the end, all to one counter, as many as the loop left room for.
      for (let j = 0; j < fetchAdds; j++) {
        const i = 100 + j;
        wrs.push({ wrId: BigInt(i), opcode: WrOpcode.AtomicFetchAndAdd, flags: 0, sgList: [{ addr: BUF_IOVA + 4 * MiB - 4096 - 8 * j, length: 8, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 4 * MiB - 8, rkey: b.mr.rkey, compareAdd: 5n });
        expected.push({ kind: WcOpcode.FetchAdd, check: () => {} });
      }
      a.dev.postSend(qa, wrs);
      const wcs = await completions(a, wrs.length, 60_000);
      assertOk(wcs);
      assert.deepEqual(wcs.map((w) => w.wrId), wrs.map((w) => w.wrId), 'completions in posting order');
      wcs.forEach((wc, k) => {
        assert.equal(wc.opcode, expected[k].kind);
        expected[k].check();
      });
      const recvs = await completions(b, sends.length, 30_000);
      assertOk(recvs);
      assert.deepEqual(recvs.map((w) => w.byteLen), sends);
      const counter = b.dm.guest.view.getBigUint64(b.dm.guest.translate(gpa(BUF_GPA + 4 * MiB - 8), 8), true);
      const atomics = wrs.filter((w) => w.opcode === WrOpcode.AtomicFetchAndAdd).length;
      assert.equal(counter, BigInt(atomics * 5), 'each fetch-add executed exactly once');
      // Received SEND payloads, in order of arrival in the receive slots.
      let s = 0;
      for (let i = 0; i < 100; i++) {
        if (i % 10 >= 4) continue;
        const len = sends[s];
        assert.ok(Buffer.from(bytesAt(b, s * SLOT, len)).equals(Buffer.from(pattern(len, i + 1))), `SEND ${i} bytes`);
        s++;
      }
      await settle(30);
      assert.equal(a.dev.pollCq(a.cq, 10).length, 0, 'no completion beyond one per work request');
      assert.equal(b.dev.pollCq(b.cq, 10).length, 0);
      const la = a.link as LossyLink;
      assert.ok(la.counters.dropped + la.counters.duplicated + la.counters.reordered > 0 || rate < 0.05, 'the network misbehaved');
      await closeAll(a, b);
    });
  });
}
