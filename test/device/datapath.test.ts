// Send, receive and SRQ queues through the device: WQE decoding into provider work requests, the
// provider's completions back into CQEs with the guest's wr_id, chains returned in posting order,
// the WQE checks of §10.3 with their vendor_err codes, flushing, SQE, reset and destroy.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, AttrMask, CqeFlag, CqeOpcode, CqeStatus, EventType, SendFlag, SendOpcode, VendorErr } from '../../src/device/abi.js';
import { ahAttr } from '../../src/guest/rdma/device.js';
import type { SendRequest } from '../../src/guest/rdma/wqe.js';
import { QpState } from '../../src/nic/qp-state.js';
import { SendFlags, WcFlags, WcStatus, WrOpcode } from '../../src/nic/types.js';
import type { RecvWr, SendWr } from '../../src/nic/verbs.js';
import { DATA_AREA, RC, UD, basicQp, rig, toRts } from './harness.js';

async function rcRig(cap = {}) {
  const r = rig();
  const base = await basicQp(r, RC, cap);
  await toRts(base.qp);
  const mr = await r.guest.getDmaMr(base.pd, AccessFlag.LOCAL_WRITE);
  return { r, ...base, mr };
}

const sends = (r: ReturnType<typeof rig>) => r.verbs.posted.filter((p) => p.kind === 'send').map((p) => p.wr as SendWr);
const recvs = (r: ReturnType<typeof rig>) => r.verbs.posted.filter((p) => p.kind === 'recv').map((p) => p.wr as RecvWr);

describe('send queue', () => {
  it('decodes SGE sends into provider work requests numbered by the device, and completes with the guest wr_id', async () => {
    const { r, qp, cq, mr } = await rcRig();
    qp.postSend([{ wrId: 0xdead_beef_0000_0001n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED | SendFlag.SOLICITED, sgList: [{ addr: DATA_AREA, length: 100, lkey: mr.lkey }, { addr: DATA_AREA + 4096, length: 28, lkey: mr.lkey }] }]);
    const [wr] = sends(r);
    assert.notEqual(wr.wrId, 0xdead_beef_0000_0001n, 'the provider sees the device sequence number');
    assert.equal(wr.opcode, WrOpcode.Send);
    assert.equal(wr.flags, SendFlags.SIGNALED | SendFlags.SOLICITED);
    assert.deepEqual(wr.sgList, [{ addr: DATA_AREA, length: 100, lkey: mr.lkey }, { addr: DATA_AREA + 4096, length: 28, lkey: mr.lkey }]);
    assert.deepEqual(cq.poll(), [], 'nothing completed yet');
    assert.deepEqual(qp.sq.takeReturned(), [], 'the chain is held until the work request retires');
    r.verbs.completeSend(qp.qpn);
    const [c] = cq.poll();
    assert.equal(c.wrId, 0xdead_beef_0000_0001n);
    assert.equal(c.status, CqeStatus.Success);
    assert.equal(c.opcode, CqeOpcode.Send);
    assert.equal(c.qpNum, qp.qpn);
    assert.deepEqual(qp.sq.takeReturned(), [0xdead_beef_0000_0001n]);
  });

  it('carries inline data, immediate data, RDMA and atomic fields', async () => {
    const { r, qp, cq, mr } = await rcRig();
    const payload = Uint8Array.from({ length: 40 }, (_, i) => i * 3);
    qp.postSend([
      { wrId: 1n, opcode: SendOpcode.SendWithImm, inline: payload, imm: 0x01020304, flags: SendFlag.SIGNALED },
      { wrId: 2n, opcode: SendOpcode.RdmaWrite, sgList: [{ addr: DATA_AREA, length: 8, lkey: mr.lkey }], remoteAddr: 0x123456789a, rkey: 0x4242 },
      { wrId: 3n, opcode: SendOpcode.RdmaRead, sgList: [{ addr: DATA_AREA, length: 64, lkey: mr.lkey }], remoteAddr: 0x1000, rkey: 7, flags: SendFlag.SIGNALED },
      { wrId: 4n, opcode: SendOpcode.AtomicCmpAndSwp, sgList: [{ addr: DATA_AREA, length: 8, lkey: mr.lkey }], remoteAddr: 0x2000, rkey: 9, compareAdd: 2n ** 63n + 5n, swap: 17n, flags: SendFlag.SIGNALED },
      { wrId: 5n, opcode: SendOpcode.AtomicFetchAndAdd, sgList: [{ addr: DATA_AREA, length: 8, lkey: mr.lkey }], remoteAddr: 0x2008, rkey: 9, compareAdd: 1n, flags: SendFlag.SIGNALED | SendFlag.FENCE },
    ]);
    const w = sends(r);
    assert.equal(w.length, 5);
    assert.deepEqual(w[0].inline, payload);
    assert.equal(w[0].immData, 0x01020304);
    assert.equal(w[0].flags & SendFlags.INLINE, SendFlags.INLINE);
    assert.deepEqual(w[0].sgList, []);
    assert.equal(w[1].remoteAddr, 0x123456789a);
    assert.equal(w[1].rkey, 0x4242);
    assert.equal(w[2].opcode, WrOpcode.RdmaRead);
    assert.equal(w[3].compareAdd, 2n ** 63n + 5n);
    assert.equal(w[3].swap, 17n);
    assert.equal(w[3].rkey, 9);
    assert.equal(w[4].flags & SendFlags.FENCE, SendFlags.FENCE);
    for (let i = 0; i < 5; i++) r.verbs.completeSend(qp.qpn, WcStatus.Success, i === 2 ? { byteLen: 64 } : {});
    const cqes = cq.poll();
    assert.deepEqual(cqes.map((c) => c.wrId), [1n, 3n, 4n, 5n], 'the unsignalled RDMA WRITE has no CQE');
    assert.deepEqual(cqes.map((c) => c.opcode), [CqeOpcode.Send, CqeOpcode.RdmaRead, CqeOpcode.CompSwap, CqeOpcode.FetchAdd]);
    assert.equal(cqes[1].byteLen, 64);
    assert.deepEqual(qp.sq.takeReturned(), [1n, 2n, 3n, 4n, 5n], 'every chain comes back, in posting order');
  });

  it('sq_sig_all signals every send', async () => {
    const r = rig();
    const pd = await r.guest.createPd();
    const cq = await r.guest.createCq(16);
    const qp = await r.guest.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, sigAll: true, cap: { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
    await toRts(qp);
    qp.postSend([{ wrId: 9n, opcode: SendOpcode.Send }]);
    r.verbs.completeSend(qp.qpn);
    assert.deepEqual(cq.poll().map((c) => c.wrId), [9n]);
  });

  it('UD sends name an AH of the same PD and may take the QP Q_Key', async () => {
    const r = rig();
    const { pd, cq, qp } = await basicQp(r, UD);
    await toRts(qp, UD);
    const ah = await r.guest.createAh(pd, ahAttr('127.0.4.4'));
    qp.postSend([
      { wrId: 1n, opcode: SendOpcode.Send, ah, remoteQpn: 0x1234567, remoteQkey: 0x80000000, flags: SendFlag.SIGNALED },
      { wrId: 2n, opcode: SendOpcode.Send, ah, remoteQpn: 5, remoteQkey: 0x42, flags: SendFlag.SIGNALED },
    ]);
    const [a, b] = sends(r);
    assert.equal(a.ah, [...r.verbs.ahs.keys()][0]);
    assert.equal(a.remoteQpn, 0x234567, '24 bits');
    assert.equal(a.remoteQkey, 0x11111111, 'bit 31: the QP Q_Key');
    assert.equal(b.remoteQkey, 0x42);
    r.verbs.completeSend(qp.qpn);
    r.verbs.completeSend(qp.qpn);
    assert.equal(cq.poll().length, 2);
  });
});

/** A WQE the device must refuse, with the vendor_err it must report. */
interface BadCase {
  name: string;
  vendor: number;
  status?: CqeStatus;
  wqe?: (lkey: number) => SendRequest;
  raw?: Uint8Array[];
  type?: number;
}

const header = (op: number, flags = 0, numSge = 0, inlineLen = 0) => {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, 0x77n, true);
  v.setUint8(8, op);
  v.setUint8(9, flags);
  v.setUint16(10, numSge, true);
  v.setUint32(16, inlineLen, true);
  return b;
};

const BAD: BadCase[] = [
  { name: 'header shorter than 64 bytes', vendor: VendorErr.SHORT_WQE, raw: [header(SendOpcode.Send).subarray(0, 40)] },
  { name: 'SGEs missing', vendor: VendorErr.SHORT_WQE, raw: [header(SendOpcode.Send, 0, 2), new Uint8Array(16)] },
  { name: 'inline bytes missing', vendor: VendorErr.SHORT_WQE, raw: [header(SendOpcode.Send, SendFlag.INLINE, 0, 32)] },
  { name: 'opcode 8 (BIND_MW)', vendor: VendorErr.BAD_OPCODE, raw: [header(8)] },
  { name: 'opcode 200', vendor: VendorErr.BAD_OPCODE, raw: [header(200)] },
  { name: 'RDMA WRITE on a UD QP', vendor: VendorErr.BAD_OPCODE, raw: [header(SendOpcode.RdmaWrite)], type: UD },
  { name: 'unknown send flag', vendor: VendorErr.BAD_FLAGS, raw: [header(SendOpcode.Send, 0x10)] },
  { name: 'INLINE with SGEs', vendor: VendorErr.BAD_FLAGS, raw: [header(SendOpcode.Send, SendFlag.INLINE, 1, 0), new Uint8Array(16)] },
  { name: 'INLINE on an RDMA READ', vendor: VendorErr.BAD_FLAGS, raw: [header(SendOpcode.RdmaRead, SendFlag.INLINE, 0, 4), new Uint8Array(4)] },
  { name: 'more SGEs than max_send_sge', vendor: VendorErr.BAD_SGE_COUNT, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.Send, sgList: Array.from({ length: 5 }, () => ({ addr: DATA_AREA, length: 1, lkey })) }) },
  { name: 'atomic with two SGEs', vendor: VendorErr.BAD_SGE_COUNT, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.AtomicFetchAndAdd, sgList: [{ addr: DATA_AREA, length: 8, lkey }, { addr: DATA_AREA, length: 8, lkey }] }) },
  { name: 'atomic SGE not 8 bytes', vendor: VendorErr.BAD_SGE_COUNT, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.AtomicCmpAndSwp, sgList: [{ addr: DATA_AREA, length: 4, lkey }] }) },
  { name: 'inline longer than max_inline_data', vendor: VendorErr.INLINE_TOO_LONG, wqe: () => ({ wrId: 0x77n, opcode: SendOpcode.Send, inline: new Uint8Array(65) }) },
  { name: 'UD send naming no AH', vendor: VendorErr.BAD_AH, wqe: () => ({ wrId: 0x77n, opcode: SendOpcode.Send, ah: 999, remoteQpn: 1, remoteQkey: 1 }), type: UD },
  { name: 'message above max_msg_sz', vendor: VendorErr.MSG_TOO_LONG, status: CqeStatus.LocLenErr, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.RdmaWrite, sgList: [{ addr: 0, length: 2 ** 30, lkey }, { addr: 0, length: 1, lkey }] }) },
  { name: 'UD message above the path MTU', vendor: VendorErr.MSG_TOO_LONG, status: CqeStatus.LocLenErr, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.Send, ah: 1, sgList: [{ addr: 0, length: 4097, lkey }] }), type: UD },
  { name: 'SGE address at 2^53 or above', vendor: VendorErr.SGE_PROTECTION, status: CqeStatus.LocProtErr, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.Send, sgList: [{ addr: 2 ** 53, length: 1, lkey }] }) },
  { name: 'LOCAL_INV of a key that is not invalidatable', vendor: VendorErr.BAD_INVALIDATE, wqe: (lkey) => ({ wrId: 0x77n, opcode: SendOpcode.LocalInv, invalidateRkey: lkey }) },
  { name: 'LOCAL_INV of no key', vendor: VendorErr.BAD_INVALIDATE, wqe: () => ({ wrId: 0x77n, opcode: SendOpcode.LocalInv, invalidateRkey: 0x12345 }) },
];

describe('send WQE checks (§10.3)', () => {
  for (const c of BAD) {
    it(`${c.name}: ${CqeStatus[c.status ?? CqeStatus.LocQpOpErr]} vendor_err ${c.vendor}, later WQEs flushed in order`, async () => {
      const type = c.type ?? RC;
      const r = rig();
      const { pd, cq, qp } = await basicQp(r, type);
      await toRts(qp, type);
      const mr = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
      if (type === UD) await r.guest.createAh(pd, ahAttr('127.0.4.4'));
      const good = (wrId: bigint): SendRequest => ({ wrId, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, ...(type === UD ? { ah: 1, remoteQpn: 3, remoteQkey: 3 } : {}) });
      qp.postSend([good(1n)]);
      if (c.raw !== undefined) assert.ok(qp.sq.postRaw(c.raw, 0x77n));
      else qp.postSend([(c.wqe as (lkey: number) => SendRequest)(mr.lkey)]);
      qp.postSend([good(3n)]);
      assert.equal(sends(r).length, 1, 'nothing after the bad WQE reaches the provider');
      assert.deepEqual(cq.poll(), [], 'the error waits for the earlier WQE');
      r.verbs.completeSend(qp.qpn);
      const cqes = cq.poll();
      assert.deepEqual(cqes.map((x) => x.wrId), type === RC ? [1n, 0x77n, 3n] : [1n, 0x77n]);
      assert.equal(cqes[0].status, CqeStatus.Success);
      assert.equal(cqes[1].status, c.status ?? CqeStatus.LocQpOpErr);
      assert.equal(cqes[1].vendorErr, c.vendor);
      if (type === RC) {
        assert.equal(cqes[2].status, CqeStatus.WrFlushErr);
        assert.equal(cqes[2].vendorErr, VendorErr.FLUSH_QP_ERR);
        assert.equal(r.verbs.stateOf(qp.qpn), QpState.Err);
        assert.equal((await qp.query()).qpState, QpState.Err);
      } else {
        // UD: the send queue stops in SQE; the next WQE waits until the driver says RTS (§10.6).
        assert.equal((await qp.query()).qpState, QpState.Sqe);
        await qp.modify(AttrMask.STATE, { qpState: QpState.Rts });
        assert.equal(sends(r).length, 2, 'the waiting WQE runs');
        r.verbs.completeSend(qp.qpn);
        assert.deepEqual(cq.poll().map((x) => x.wrId), [3n]);
      }
      assert.deepEqual(qp.sq.takeReturned(), [1n, 0x77n, 3n]);
    });
  }
});

describe('receive queues', () => {
  it('posts receives, completes them with byte_len, flags and the GRH for UD', async () => {
    const r = rig();
    const { pd, cq, qp } = await basicQp(r, UD);
    const mr = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
    qp.postRecv([{ wrId: 11n, sgList: [{ addr: DATA_AREA, length: 4096, lkey: mr.lkey }] }]);
    assert.equal(recvs(r).length, 0, 'RESET: receive WQEs wait');
    await qp.modify(AttrMask.STATE | AttrMask.QKEY, { qpState: QpState.Init, qkey: 5 });
    assert.deepEqual(recvs(r)[0].sgList, [{ addr: DATA_AREA, length: 4096, lkey: mr.lkey }]);
    r.verbs.deliverRecv(qp.qpn, 140, { srcQp: 0x99, wcFlags: WcFlags.WITH_IMM, immData: 0xa1b2c3d4, solicited: true });
    const [c] = cq.poll();
    assert.equal(c.wrId, 11n);
    assert.equal(c.opcode, CqeOpcode.Recv);
    assert.equal(c.byteLen, 140);
    assert.equal(c.srcQp, 0x99);
    assert.equal(c.immData, 0xa1b2c3d4);
    assert.equal(c.networkHdrType, 2);
    assert.equal(c.wcFlags, CqeFlag.GRH | CqeFlag.WITH_IMM | CqeFlag.WITH_NETWORK_HDR_TYPE);
    assert.deepEqual(qp.rq.takeReturned(), [11n]);
  });

  it('a malformed receive WQE completes LOC_QP_OP_ERR vendor 10 and moves the QP to ERR', async () => {
    const { r, qp, cq, mr } = await rcRig();
    qp.postRecv([{ wrId: 1n, sgList: [{ addr: DATA_AREA, length: 64, lkey: mr.lkey }] }]);
    qp.postRecv([{ wrId: 2n, sgList: Array.from({ length: 5 }, () => ({ addr: DATA_AREA, length: 64, lkey: mr.lkey })) }]);
    qp.postRecv([{ wrId: 3n, sgList: [] }]);
    // The earlier receive is flushed by the provider when the QP enters ERR: all in order.
    const cqes = cq.poll();
    assert.deepEqual(cqes.map((c) => [c.wrId, c.status, c.vendorErr]), [
      [1n, CqeStatus.WrFlushErr, VendorErr.FLUSH_QP_ERR],
      [2n, CqeStatus.LocQpOpErr, VendorErr.RECV_MALFORMED],
      [3n, CqeStatus.WrFlushErr, VendorErr.FLUSH_QP_ERR],
    ]);
    assert.equal(r.verbs.stateOf(qp.qpn), QpState.Err);
    assert.deepEqual(qp.rq.takeReturned(), [1n, 2n, 3n]);
  });

  it('SRQ receives complete on the consuming QP; a malformed SRQ WQE raises SRQ_ERR', async () => {
    const r = rig();
    const pd = await r.guest.createPd();
    const cq = await r.guest.createCq(16);
    const mr = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
    const srq = await r.guest.createSrq(pd, 16, 2);
    const qp = await r.guest.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, srq: srq.srqn, cap: { maxSendWr: 4, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 0, maxInlineData: 0 } });
    await toRts(qp);
    srq.postRecv([{ wrId: 21n, sgList: [{ addr: DATA_AREA, length: 256, lkey: mr.lkey }] }, { wrId: 22n, sgList: [{ addr: DATA_AREA, length: 256, lkey: mr.lkey }] }]);
    assert.equal(r.verbs.posted.filter((p) => p.srq !== undefined).length, 2);
    qp.postRecv([{ wrId: 99n, sgList: [] }]);
    assert.deepEqual(qp.rq.takeReturned(), [99n], 'the recvq of an SRQ QP gives buffers straight back');
    r.verbs.deliverRecv(qp.qpn, 10);
    r.verbs.deliverRecv(qp.qpn, 20);
    assert.deepEqual(cq.poll().map((c) => [c.wrId, c.qpNum, c.byteLen]), [[21n, qp.qpn, 10], [22n, qp.qpn, 20]]);
    assert.deepEqual(srq.wq.takeReturned(), [21n, 22n]);
    srq.postRecv([{ wrId: 23n, sgList: [{ addr: DATA_AREA, length: 1, lkey: mr.lkey }, { addr: DATA_AREA, length: 1, lkey: mr.lkey }, { addr: 0, length: 1, lkey: mr.lkey }] }]);
    assert.deepEqual(r.guest.pollEvents(), [{ type: EventType.SrqErr, handle: srq.srqn }]);
    assert.deepEqual(srq.wq.takeReturned(), [23n]);
  });
});

describe('QP state effects on the queues', () => {
  it('WQEs posted before RTS wait; MODIFY to ERR flushes in posting order; RESET returns every buffer without CQEs', async () => {
    const r = rig();
    const { pd, cq, qp } = await basicQp(r);
    const mr = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
    qp.postSend([{ wrId: 1n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED }]);
    assert.equal(sends(r).length, 0);
    await toRts(qp);
    assert.equal(sends(r).length, 1, 'RTS: the waiting WQE runs');
    qp.postRecv([{ wrId: 5n, sgList: [{ addr: DATA_AREA, length: 8, lkey: mr.lkey }] }]);
    await qp.modify(AttrMask.STATE, { qpState: QpState.Err });
    qp.postSend([{ wrId: 2n, opcode: SendOpcode.Send }]);
    const cqes = cq.poll();
    assert.deepEqual(cqes.map((c) => [c.wrId, c.status]), [[1n, CqeStatus.WrFlushErr], [5n, CqeStatus.WrFlushErr], [2n, CqeStatus.WrFlushErr]]);
    assert.deepEqual(qp.sq.takeReturned(), [1n, 2n]);
    await qp.modify(AttrMask.STATE, { qpState: QpState.Reset });
    qp.postSend([{ wrId: 3n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED }]);
    qp.postRecv([{ wrId: 6n, sgList: [] }]);
    await toRts(qp);
    assert.equal(sends(r).length, 2);
    await qp.modify(AttrMask.STATE, { qpState: QpState.Reset });
    assert.deepEqual(qp.sq.takeReturned(), [3n], 'RESET gives back what was posted');
    assert.deepEqual(qp.rq.takeReturned(), [5n, 6n]);
    assert.deepEqual(cq.poll(), [], 'and writes no CQE');
    assert.deepEqual(r.verbs.outstanding(qp.qpn), { sends: 0, recvs: 0 });
  });

  it('DESTROY_QP returns outstanding buffers without completions; CQEs already written stay', async () => {
    const { r, qp, cq } = await rcRig();
    qp.postSend([{ wrId: 1n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED }, { wrId: 2n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED }]);
    r.verbs.completeSend(qp.qpn);
    await qp.destroy();
    assert.deepEqual(cq.poll().map((c) => c.wrId), [1n]);
    assert.equal(r.device.core.inFlight.size, 0);
  });
});

describe('both ring formats', () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'} rings: commands, sends, receives, backlog and return order`, async () => {
      const r = rig({ open: { packed } });
      assert.equal(r.device.transport.format, packed ? 'packed' : 'split');
      const pd = await r.guest.createPd();
      const cq = await r.guest.createCq(64, { buffers: 3 });
      const qp = await r.guest.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 32 } });
      await toRts(qp);
      const mr = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
      for (let round = 0; round < 20; round++) {
        const base = BigInt(round * 10);
        qp.postRecv([{ wrId: base + 9n, sgList: [{ addr: DATA_AREA, length: 64, lkey: mr.lkey }] }]);
        qp.postSend([1n, 2n, 3n, 4n, 5n].map((i) => ({ wrId: base + i, opcode: SendOpcode.Send, flags: i % 2n === 1n ? SendFlag.SIGNALED : 0, inline: Uint8Array.of(Number(i)) })));
        for (let i = 0; i < 5; i++) r.verbs.completeSend(qp.qpn);
        r.verbs.deliverRecv(qp.qpn, 7);
        const got: bigint[] = [];
        for (let i = 0; i < 8 && got.length < 4; i++) got.push(...cq.poll().map((c) => c.wrId));
        assert.deepEqual(got, [base + 1n, base + 3n, base + 5n, base + 9n]);
        assert.deepEqual(qp.sq.takeReturned(), [1n, 2n, 3n, 4n, 5n].map((i) => base + i));
        assert.deepEqual(qp.rq.takeReturned(), [base + 9n]);
      }
      await assert.rejects(r.guest.createCq(0), /INVALID_ARG/);
      await qp.destroy();
      await cq.destroy();
      assert.ok(!r.device.needsReset);
    });
  }
});
