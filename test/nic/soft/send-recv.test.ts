// RC SEND/RECV between two guests: small, with immediate, inline, multi-packet up to 1 MiB, on
// both kernel engines and every path MTU, and a message that crosses the 24-bit PSN wrap.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PathMtu, SendFlags, WcFlags, WcOpcode, WrOpcode } from '../../../src/nic/types.js';
import { BUF_IOVA, KiB, MiB, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern } from './fixtures.js';

for (const engine of ['wasm', 'ts'] as const) {
  describe(`RC SEND/RECV (${engine})`, () => {
    it('moves a small message and one with immediate data', async () => {
      const { a, b } = pair({ engine });
      const [qa, qb] = connectRc(a, b);
      const msg = pattern(100, 1);
      fill(a, 0, msg);
      b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA + 4096, length: 4096, lkey: b.mr.lkey }] }, { wrId: 2n, sgList: [{ addr: BUF_IOVA + 8192, length: 4096, lkey: b.mr.lkey }] }]);
      a.dev.postSend(qa, [
        { wrId: 10n, opcode: WrOpcode.Send, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA, length: 100, lkey: a.mr.lkey }] },
        { wrId: 11n, opcode: WrOpcode.SendWithImm, flags: SendFlags.SIGNALED, immData: 0xdeadbeef, sgList: [{ addr: BUF_IOVA, length: 37, lkey: a.mr.lkey }] },
      ]);
      const sent = await completions(a, 2);
      assertOk(sent);
      assert.deepEqual(sent.map((w) => [w.wrId, w.opcode]), [[10n, WcOpcode.Send], [11n, WcOpcode.Send]]);
      const got = await completions(b, 2);
      assertOk(got);
      assert.equal(got[0].wrId, 1n);
      assert.equal(got[0].byteLen, 100);
      assert.equal(got[0].opcode, WcOpcode.Recv);
      assert.equal(got[0].qpNum, qb);
      assert.equal(got[0].srcQp, qa);
      assert.equal(got[1].byteLen, 37);
      assert.equal(got[1].immData, 0xdeadbeef);
      assert.equal(got[1].wcFlags & WcFlags.WITH_IMM, WcFlags.WITH_IMM);
      assert.deepEqual(bytesAt(b, 4096, 100), msg);
      assert.deepEqual(bytesAt(b, 8192, 37), msg.subarray(0, 37));
      await closeAll(a, b);
    });

    it('copies inline data at post time', async () => {
      const { a, b } = pair({ engine });
      const [qa, qb] = connectRc(a, b);
      b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 256, lkey: b.mr.lkey }] }]);
      const data = pattern(120, 9);
      const inline = data.slice();
      a.dev.postSend(qa, [{ wrId: 5n, opcode: WrOpcode.Send, flags: SendFlags.INLINE, sgList: [], inline }]);
      inline.fill(0); // the caller may reuse its buffer at once
      assertOk(await completions(a, 1));
      const [wc] = await completions(b, 1);
      assert.equal(wc.byteLen, 120);
      assert.deepEqual(bytesAt(b, 0, 120), data);
      await closeAll(a, b);
    });

    for (const [mtu, len] of [[PathMtu.Mtu256, 64 * KiB + 3], [PathMtu.Mtu1024, 1 * MiB], [PathMtu.Mtu4096, 1 * MiB - 1], [PathMtu.Mtu2048, 4096], [PathMtu.Mtu512, 0]] as const) {
      it(`moves a ${len}-byte message at MTU ${128 << mtu}, scattered over several SGEs`, async () => {
        const { a, b } = pair({ engine });
        const [qa, qb] = connectRc(a, b, { mtu });
        const msg = pattern(len, len + mtu);
        fill(a, 0, msg);
        // Receive buffer in three uneven pieces, out of order in the MR.
        const p1 = Math.floor(len / 3);
        const p2 = Math.floor(len / 2);
        const base = 2 * MiB;
        b.dev.postRecv(qb, [{ wrId: 1n, sgList: [
          { addr: BUF_IOVA + base + 1 * MiB, length: p1, lkey: b.mr.lkey },
          { addr: BUF_IOVA + base + 7, length: p2, lkey: b.mr.lkey },
          { addr: BUF_IOVA + base + 600 * KiB, length: len - p1 - p2 + 10, lkey: b.mr.lkey },
        ] }]);
        a.dev.postSend(qa, [{ wrId: 2n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: p2, lkey: a.mr.lkey }, { addr: BUF_IOVA + p2, length: len - p2, lkey: a.mr.lkey }] }]);
        assertOk(await completions(a, 1));
        const [wc] = await completions(b, 1);
        assert.equal(wc.byteLen, len);
        const got = new Uint8Array(len);
        got.set(bytesAt(b, base + 1 * MiB, p1), 0);
        got.set(bytesAt(b, base + 7, p2), p1);
        got.set(bytesAt(b, base + 600 * KiB, len - p1 - p2), p1 + p2);
        assert.ok(Buffer.from(got).equals(Buffer.from(msg)), 'received bytes differ');
        await closeAll(a, b);
      });
    }

    it('carries a message across the 24-bit PSN wrap', async () => {
      const { a, b } = pair({ engine });
      const [qa, qb] = connectRc(a, b, { sqPsn: 0xfffff0, mtu: PathMtu.Mtu256 });
      const msg = pattern(40 * 256 + 5, 77);
      fill(a, 0, msg);
      b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA + MiB, length: msg.length, lkey: b.mr.lkey }] }, { wrId: 2n, sgList: [{ addr: BUF_IOVA + 2 * MiB, length: 100, lkey: b.mr.lkey }] }]);
      a.dev.postSend(qa, [
        { wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: msg.length, lkey: a.mr.lkey }] },
        { wrId: 2n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 100, lkey: a.mr.lkey }] },
      ]);
      assertOk(await completions(a, 2));
      assertOk(await completions(b, 2));
      assert.ok(Buffer.from(bytesAt(b, MiB, msg.length)).equals(Buffer.from(msg)));
      const attrs = a.dev.queryQp(qa);
      assert.equal(attrs.sqPsn, 0xfffff0);
      await closeAll(a, b);
    });
  });
}
