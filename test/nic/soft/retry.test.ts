// Recovery and its limits: RNR NAKs retried forever (rnr_retry 7) until a receive is posted,
// a finite RNR budget running out, and the local ACK timer running out of retries when the peer
// has gone. Timeouts are small (timeout 8 = about 1 ms) so the tests run fast.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QpState } from '../../../src/nic/qp-state.js';
import { WcOpcode, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import { BUF_IOVA, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern, settle } from './fixtures.js';

describe('RNR and retry', () => {
  it('retries RNR NAKs forever with rnr_retry 7 and succeeds once a receive is posted', async () => {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b, { rnrRetry: 7, minRnrTimer: 1 });
    const msg = pattern(5000, 8);
    fill(a, 0, msg);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: msg.length, lkey: a.mr.lkey }] }]);
    await settle(40);
    assert.equal(a.dev.pollCq(a.cq, 1).length, 0, 'nothing completes while the peer has no receive WQE');
    assert.equal(a.dev.queryQp(qa).qpState, QpState.Rts);
    b.dev.postRecv(qb, [{ wrId: 2n, sgList: [{ addr: BUF_IOVA, length: 8192, lkey: b.mr.lkey }] }]);
    assertOk(await completions(a, 1));
    const [wc] = await completions(b, 1);
    assert.equal(wc.byteLen, msg.length);
    assert.ok(Buffer.from(bytesAt(b, 0, msg.length)).equals(Buffer.from(msg)));
    await closeAll(a, b);
  });

  it('gives up with RNR_RETRY_EXC_ERR after a finite rnr_retry and flushes the rest', async () => {
    const { a, b } = pair();
    const [qa] = connectRc(a, b, { rnrRetry: 2, minRnrTimer: 1 });
    a.dev.postSend(qa, [1n, 2n, 3n].map((wrId) => ({ wrId, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 10, lkey: a.mr.lkey }] })));
    const wcs = await completions(a, 3);
    assert.deepEqual(wcs.map((w) => [w.wrId, WcStatus[w.status]]), [[1n, 'RnrRetryExcErr'], [2n, 'WrFlushErr'], [3n, 'WrFlushErr']]);
    assert.equal(a.dev.queryQp(qa).qpState, QpState.Err);
    await closeAll(a, b);
  });

  it('gives up with RETRY_EXC_ERR when the peer disappears, and moves the QP to ERR', async () => {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b, { timeout: 8, retryCnt: 3 });
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 100, lkey: b.mr.lkey }] }]);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 100, lkey: a.mr.lkey }] }]);
    assertOk(await completions(a, 1));
    await b.link.close(); // the peer's address goes away: packets to it vanish
    a.dev.postSend(qa, [
      { wrId: 2n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: 3000, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA, rkey: b.mr.rkey },
      { wrId: 3n, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA, length: 100, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA, rkey: b.mr.rkey },
    ]);
    const wcs = await completions(a, 2);
    assert.deepEqual(wcs.map((w) => [w.wrId, WcStatus[w.status], w.opcode]), [[2n, 'RetryExcErr', WcOpcode.RdmaWrite], [3n, 'WrFlushErr', WcOpcode.RdmaRead]]);
    assert.equal(a.dev.queryQp(qa).qpState, QpState.Err);
    // Posting to a QP in ERR completes at once with a flush error.
    a.dev.postSend(qa, [{ wrId: 4n, opcode: WrOpcode.Send, flags: 0, sgList: [] }]);
    const [late] = await completions(a, 1);
    assert.equal(late.status, WcStatus.WrFlushErr);
    await closeAll(a, b);
  });
});
