// RDMA WRITE (with immediate), RDMA READ (multi-packet responses) and the two atomics between
// two guests, checked byte for byte in guest memory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpa } from '../../../src/memory/index.js';
import { PathMtu, SendFlags, WcFlags, WcOpcode, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr } from '../../../src/nic/verbs.js';
import { BUF_GPA, BUF_IOVA, type Guest, KiB, MiB, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern } from './fixtures.js';

function u64At(g: Guest, off: number): bigint {
  return g.dm.guest.view.getBigUint64(g.dm.guest.translate(gpa(BUF_GPA + off), 8), true);
}

for (const engine of ['wasm', 'ts'] as const) {
  describe(`RC RDMA (${engine})`, () => {
    it('writes, with and without immediate data, into the peer MR', async () => {
      const { a, b } = pair({ engine });
      const [qa, qb] = connectRc(a, b, { mtu: PathMtu.Mtu512 });
      const msg = pattern(300 * KiB + 11, 3);
      fill(a, 0, msg);
      b.dev.postRecv(qb, [{ wrId: 9n, sgList: [] }]);
      a.dev.postSend(qa, [
        { wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: msg.length, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + MiB + 5, rkey: b.mr.rkey },
        { wrId: 2n, opcode: WrOpcode.RdmaWriteWithImm, flags: SendFlags.SOLICITED, immData: 42, sgList: [{ addr: BUF_IOVA, length: 1000, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 3 * MiB, rkey: b.mr.rkey },
      ]);
      const wcs = await completions(a, 2);
      assertOk(wcs);
      assert.deepEqual(wcs.map((w) => w.opcode), [WcOpcode.RdmaWrite, WcOpcode.RdmaWrite]);
      const [recv] = await completions(b, 1);
      assert.equal(recv.wrId, 9n);
      assert.equal(recv.opcode, WcOpcode.RecvRdmaWithImm);
      assert.equal(recv.immData, 42);
      assert.equal(recv.byteLen, 1000);
      assert.equal(recv.wcFlags & WcFlags.WITH_IMM, WcFlags.WITH_IMM);
      assert.ok(Buffer.from(bytesAt(b, MiB + 5, msg.length)).equals(Buffer.from(msg)));
      assert.ok(Buffer.from(bytesAt(b, 3 * MiB, 1000)).equals(Buffer.from(msg.subarray(0, 1000))));
      await closeAll(a, b);
    });

    for (const [mtu, len] of [[PathMtu.Mtu256, 100 * KiB + 1], [PathMtu.Mtu4096, MiB], [PathMtu.Mtu1024, 1], [PathMtu.Mtu1024, 0]] as const) {
      it(`reads ${len} bytes at MTU ${128 << mtu} (multi-packet responses)`, async () => {
        const { a, b } = pair({ engine });
        const [qa] = connectRc(a, b, { mtu });
        const msg = pattern(len, len + 5);
        fill(b, 2 * MiB, msg);
        a.dev.postSend(qa, [{ wrId: 7n, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA + 8, length: Math.floor(len / 2), lkey: a.mr.lkey }, { addr: BUF_IOVA + 3 * MiB, length: len - Math.floor(len / 2), lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 2 * MiB, rkey: b.mr.rkey }]);
        const [wc] = await completions(a, 1);
        assertOk([wc]);
        assert.equal(wc.opcode, WcOpcode.RdmaRead);
        assert.equal(wc.byteLen, len);
        const got = new Uint8Array(len);
        got.set(bytesAt(a, 8, Math.floor(len / 2)), 0);
        got.set(bytesAt(a, 3 * MiB, len - Math.floor(len / 2)), Math.floor(len / 2));
        assert.ok(Buffer.from(got).equals(Buffer.from(msg)));
        await closeAll(a, b);
      });
    }

    it('runs compare-and-swap: swaps on a match, not on a mismatch, and returns the old value', async () => {
      const { a, b } = pair({ engine });
      const [qa] = connectRc(a, b);
      b.dm.guest.view.setBigUint64(b.dm.guest.translate(gpa(BUF_GPA + 64), 8), 0x1122334455667788n, true);
      const cas = (wrId: bigint, compare: bigint, swap: bigint, out: number): SendWr => ({
        wrId, opcode: WrOpcode.AtomicCmpAndSwp, flags: 0, sgList: [{ addr: BUF_IOVA + out, length: 8, lkey: a.mr.lkey }],
        remoteAddr: BUF_IOVA + 64, rkey: b.mr.rkey, compareAdd: compare, swap,
      });
      a.dev.postSend(qa, [cas(1n, 5n, 6n, 0), cas(2n, 0x1122334455667788n, 0xffffffffffffffffn, 8), cas(3n, 0xffffffffffffffffn, 1n, 16)]);
      const wcs = await completions(a, 3);
      assertOk(wcs);
      assert.deepEqual(wcs.map((w) => w.opcode), [WcOpcode.CompSwap, WcOpcode.CompSwap, WcOpcode.CompSwap]);
      assert.equal(u64At(a, 0), 0x1122334455667788n);
      assert.equal(u64At(a, 8), 0x1122334455667788n);
      assert.equal(u64At(a, 16), 0xffffffffffffffffn);
      assert.equal(u64At(b, 64), 1n);
      await closeAll(a, b);
    });

    it('many concurrent fetch-and-adds from two QPs give the right total and distinct old values', async () => {
      const { a, b } = pair({ engine });
      const [q1] = connectRc(a, b, { maxRdAtomic: 4 });
      const [q2] = connectRc(a, b, { maxRdAtomic: 16 });
      const perQp = 200;
      const post = (qp: number, base: number): void =>
        a.dev.postSend(qp, Array.from({ length: perQp }, (_, i) => ({
          wrId: BigInt(base + i), opcode: WrOpcode.AtomicFetchAndAdd, flags: 0, sgList: [{ addr: BUF_IOVA + (base + i) * 8, length: 8, lkey: a.mr.lkey }],
          remoteAddr: BUF_IOVA + 4096, rkey: b.mr.rkey, compareAdd: 3n,
        })));
      post(q1, 0);
      post(q2, perQp);
      assertOk(await completions(a, 2 * perQp));
      assert.equal(u64At(b, 4096), BigInt(2 * perQp * 3));
      const olds = new Set<bigint>();
      for (let i = 0; i < 2 * perQp; i++) olds.add(u64At(a, i * 8));
      assert.equal(olds.size, 2 * perQp, 'each fetch-add saw a different value');
      for (const v of olds) assert.equal(v % 3n, 0n);
      await closeAll(a, b);
    });
  });
}
