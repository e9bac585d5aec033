// Completion queues (§11): the backlog when buffers run out, CQ overrun and its consequences,
// arming and the notifications it allows, cqes_written for missed events, short CQE buffers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CqeStatus, EventType, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { QpState } from '../../src/nic/qp-state.js';
import { WcStatus } from '../../src/nic/types.js';
import { RC, rig, toRts } from './harness.js';

async function setup(depth: number, buffers: number, bufferBytes?: number) {
  const r = rig();
  const pd = await r.guest.createPd();
  const cq = await r.guest.createCq(depth, { buffers, bufferBytes });
  const qp = await r.guest.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
  await toRts(qp);
  const send = (n: number, from = 1) => qp.postSend(Array.from({ length: n }, (_, i) => ({ wrId: BigInt(from + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED })));
  return { r, cq, qp, send };
}

describe('CQ backlog and overrun (§11.4)', () => {
  it('CQEs without buffers wait in the backlog and come out in order as buffers return', async () => {
    const { r, cq, qp, send } = await setup(8, 1);
    send(6);
    for (let i = 0; i < 6; i++) r.verbs.completeSend(qp.qpn);
    assert.equal(r.device.core.cqs[cq.cqn]?.backlogLength, 5);
    const got: bigint[] = [];
    for (let i = 0; i < 10 && got.length < 6; i++) got.push(...cq.poll().map((c) => c.wrId));
    assert.deepEqual(got, [1n, 2n, 3n, 4n, 5n, 6n]);
    assert.equal(r.device.core.cqs[cq.cqn]?.backlogLength, 0);
    assert.deepEqual(qp.sq.takeReturned(), [1n, 2n, 3n, 4n, 5n, 6n], 'chains come back whether or not the CQE is written yet');
  });

  it('one CQE more than the depth overruns: CQ_ERR, QP_FATAL, the QP in ERR, later CQEs discarded, chains still returned', async () => {
    const { r, cq, qp, send } = await setup(2, 0);
    send(5);
    r.verbs.completeSend(qp.qpn);
    r.verbs.completeSend(qp.qpn);
    assert.equal(r.device.core.cqs[cq.cqn]?.error, false, 'a full backlog is not yet an overrun');
    r.verbs.completeSend(qp.qpn);
    const dcq = r.device.core.cqs[cq.cqn];
    assert.equal(dcq?.error, true);
    assert.equal(r.verbs.stateOf(qp.qpn), QpState.Err, 'the QP using the CQ moved to ERR');
    assert.equal((await qp.query()).qpState, QpState.Err);
    assert.deepEqual(r.guest.pollEvents(), [{ type: EventType.CqErr, handle: cq.cqn }, { type: EventType.QpFatal, handle: qp.qpn }]);
    assert.deepEqual(qp.sq.takeReturned(), [1n, 2n, 3n, 4n, 5n], 'flushed WQEs are returned though their CQEs are lost');
    assert.deepEqual(cq.poll(), [], 'the backlog was discarded with the error');
    // A CQ in error stays so: new buffers get nothing.
    assert.equal(dcq?.backlogLength, 0);
  });

  it('a buffer too short for a CQE is returned empty and is a CQ error', async () => {
    const { r, cq, qp, send } = await setup(4, 2, 32);
    send(1);
    r.verbs.completeSend(qp.qpn);
    assert.deepEqual(cq.poll(), []);
    assert.equal(cq.cqes.returnedEmpty, 1);
    assert.equal(r.device.core.cqs[cq.cqn]?.error, true);
    assert.equal(r.verbs.stateOf(qp.qpn), QpState.Err);
  });

  it('DESTROY_CQ returns every buffer still available', async () => {
    const r = rig();
    const cq = await r.guest.createCq(8, { buffers: 8 });
    await r.guest.destroyCqCommand(cq.cqn);
    assert.equal(cq.cqes.drain(), 8);
  });
});

describe('CQ arming (§11.3)', () => {
  it('an unarmed CQ never interrupts; NEXT_COMPLETION interrupts once for the next CQE', async () => {
    const { r, cq, qp, send } = await setup(16, 16);
    send(4);
    const calls0 = cq.interrupts;
    r.verbs.completeSend(qp.qpn);
    assert.equal(cq.interrupts, calls0, 'unarmed: no interrupt');
    assert.equal(await cq.arm(), true, 'cqes_written (1) differs from consumed (0): poll again');
    assert.equal(cq.poll().length, 1);
    assert.equal(await cq.arm(), false);
    r.verbs.completeSend(qp.qpn);
    assert.equal(cq.interrupts, calls0 + 1);
    r.verbs.completeSend(qp.qpn);
    assert.equal(cq.interrupts, calls0 + 1, 'the arm was used up');
    assert.equal(r.device.core.cqs[cq.cqn]?.armed, 0);
    assert.equal(cq.poll().length, 2);
  });

  it('SOLICITED waits for a solicited receive or an error; NEXT_COMPLETION widens it', async () => {
    const { r, cq, qp, send } = await setup(16, 16);
    qp.postRecv([1n, 2n, 3n].map((wrId) => ({ wrId, sgList: [] })));
    send(2, 10);
    const base = cq.interrupts;
    await cq.arm(true);
    r.verbs.completeSend(qp.qpn);
    r.verbs.deliverRecv(qp.qpn, 1);
    assert.equal(cq.interrupts, base, 'neither a send nor an unsolicited receive triggers');
    r.verbs.deliverRecv(qp.qpn, 1, { solicited: true });
    assert.equal(cq.interrupts, base + 1);
    await cq.arm(true);
    r.verbs.completeSend(qp.qpn, WcStatus.RemAccessErr);
    assert.equal(cq.interrupts, base + 2, 'an error triggers a SOLICITED arm');
    const cqes = cq.poll();
    assert.deepEqual(cqes.map((c) => c.status), [CqeStatus.Success, CqeStatus.Success, CqeStatus.Success, CqeStatus.RemAccessErr]);
    await cq.arm(true);
    await cq.arm(false);
    assert.equal(r.device.core.cqs[cq.cqn]?.armed, 2, 'NEXT_COMPLETION widens SOLICITED');
    await cq.arm(true);
    assert.equal(r.device.core.cqs[cq.cqn]?.armed, 2, 'SOLICITED does not narrow it');
  });
});
