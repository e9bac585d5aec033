// UD SEND: the GRH area ahead of the payload, immediate data, Q_Key checks (including the
// controlled Q_Key rule), and the silent drops UD allows (no receive WQE, a buffer too small).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QpAttr, QpState, QpType } from '../../../src/nic/qp-state.js';
import { GRH_BYTES } from '../../../src/nic/roce/responder.js';
import { SendFlags, WcFlags, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import { BUF_IOVA, type Guest, assertOk, bytesAt, closeAll, completions, fill, pair, pattern, settle } from './fixtures.js';

function udQp(g: Guest, qkey: number): number {
  const cap = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 2, maxInlineBytes: 64 };
  const qpn = g.dev.createQp({ type: QpType.Ud, pd: g.pd, sendCq: g.cq, recvCq: g.cq, cap, sigAll: true });
  g.dev.modifyQp(qpn, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qkey }, QpAttr.STATE | QpAttr.PKEY_INDEX | QpAttr.PORT | QpAttr.QKEY);
  g.dev.modifyQp(qpn, { qpState: QpState.Rtr }, QpAttr.STATE);
  g.dev.modifyQp(qpn, { qpState: QpState.Rts, sqPsn: 0x123 }, QpAttr.STATE | QpAttr.SQ_PSN);
  return qpn;
}

const av = (dgid: string) => ({ dgid, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 });

for (const engine of ['wasm', 'ts'] as const) {
  describe(`UD SEND (${engine})`, () => {
    it('delivers datagrams with a GRH, immediate data and the sender QPN', async () => {
      const { a, b } = pair({ engine });
      const qa = udQp(a, 0x1111);
      const qb = udQp(b, 0x2222);
      const ah = a.dev.createAh(a.pd, av(b.ip));
      const msg = pattern(3000, 4);
      fill(a, 0, msg);
      b.dev.postRecv(qb, [1n, 2n].map((wrId) => ({ wrId, sgList: [{ addr: BUF_IOVA + Number(wrId) * 8192, length: 4096 + GRH_BYTES, lkey: b.mr.lkey }] })));
      a.dev.postSend(qa, [
        { wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 3000, lkey: a.mr.lkey }], ah, remoteQpn: qb, remoteQkey: 0x2222 },
        // The high bit asks for the sender QP's own Q_Key, which does not match: dropped.
        { wrId: 2n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 10, lkey: a.mr.lkey }], ah, remoteQpn: qb, remoteQkey: 0x80000000 },
        { wrId: 3n, opcode: WrOpcode.SendWithImm, flags: SendFlags.INLINE, sgList: [], inline: new Uint8Array([1, 2, 3]), immData: 0xabc, ah, remoteQpn: qb, remoteQkey: 0x2222 },
      ]);
      assertOk(await completions(a, 3));
      const got = await completions(b, 2);
      assertOk(got);
      assert.equal(got[0].byteLen, GRH_BYTES + 3000);
      assert.equal(got[0].srcQp, qa);
      assert.equal(got[0].wcFlags & WcFlags.GRH, WcFlags.GRH);
      assert.ok(Buffer.from(bytesAt(b, 8192 + GRH_BYTES, 3000)).equals(Buffer.from(msg)));
      // The GRH area holds the IPv4 header in its last 20 bytes: version 4, UDP, source address.
      const grh = bytesAt(b, 8192, GRH_BYTES);
      assert.equal(grh[20], 0x45);
      assert.equal(grh[29], 17);
      assert.deepEqual([...grh.subarray(32, 36)], [127, 0, 1, 5]);
      assert.deepEqual([...grh.subarray(36, 40)], [127, 0, 1, 6]);
      assert.equal(got[1].immData, 0xabc);
      assert.equal(got[1].byteLen, GRH_BYTES + 3);
      assert.equal(b.dev.counters.dropped.get('Q_Key mismatch'), 1);
      await closeAll(a, b);
    });

    it('drops datagrams with no receive WQE or too small a buffer, and refuses a message over the MTU', async () => {
      const { a, b } = pair({ engine });
      const qa = udQp(a, 7);
      const qb = udQp(b, 7);
      const ah = a.dev.createAh(a.pd, av(b.ip));
      const send = (wrId: bigint, length: number) => ({ wrId, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length, lkey: a.mr.lkey }], ah, remoteQpn: qb, remoteQkey: 7 });
      a.dev.postSend(qa, [send(1n, 100)]);
      assertOk(await completions(a, 1));
      await settle(5);
      assert.equal(b.dev.counters.dropped.get('no UD receive WQE'), 1);
      b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 50, lkey: b.mr.lkey }] }]);
      a.dev.postSend(qa, [send(2n, 100)]);
      assertOk(await completions(a, 1));
      await settle(5);
      assert.equal(b.dev.counters.dropped.get('UD receive WQE too small'), 1);
      a.dev.postSend(qa, [send(3n, 5000)]);
      const [big] = await completions(a, 1);
      assert.equal(big.status, WcStatus.LocLenErr);
      // A UD send error takes the QP to SQE, not ERR (IBTA 10.3.1).
      assert.equal(a.dev.queryQp(qa).qpState, QpState.Sqe);
      await closeAll(a, b);
    });
  });
}
