// The verbs object layer of SoftRoce: handles and their errors, chosen QPNs (R5), modify-QP
// checks, MR reregistration keeping keys (R2), all-memory MRs, CQ overrun and events, SRQs,
// posting checks, unsignaled sends, and capabilities that tell the truth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Gpa, gpa } from '../../../src/memory/index.js';
import { VerbsError, VerbsErrorCode } from '../../../src/nic/errors.js';
import { QpAttr, QpState, QpType } from '../../../src/nic/qp-state.js';
import { Access, PathMtu, SendFlags, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import { BUF_GPA, BUF_IOVA, RAM_GPA, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern, settle } from './fixtures.js';

const code = (c: VerbsErrorCode) => (e: unknown) => e instanceof VerbsError && e.code === c;
const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 2, maxRecvSge: 2, maxInlineBytes: 64 };

describe('SoftRoce objects', () => {
  it('tells the truth about what it can do', async () => {
    const { a, b } = pair();
    const c = a.dev.capabilities;
    assert.deepEqual({ ...c }, { physicalMr: true, allMemoryMr: true, onDemandPaging: false, dirtyLog: true, chosenQpn: true, suspendQp: true, saveState: false });
    connectRc(a, b);
    assert.throws(() => a.dev.saveState(), code(VerbsErrorCode.NotSupported));
    assert.throws(() => a.dev.restoreState(new Uint8Array(4)), code(VerbsErrorCode.NotSupported));
    assert.throws(() => a.dev.registerAll(a.pd, Access.LOCAL_WRITE | Access.ON_DEMAND), code(VerbsErrorCode.NotSupported));
    await closeAll(a, b);
  });

  it('creates a QP with a chosen QPN, refuses a taken one with EEXIST, and frees it on destroy', async () => {
    const { a, b } = pair();
    const o = { type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true };
    assert.equal(a.dev.createQp({ ...o, qpn: 0x12345 }), 0x12345);
    assert.throws(() => a.dev.createQp({ ...o, qpn: 0x12345 }), code(VerbsErrorCode.Exists));
    assert.throws(() => a.dev.createQp({ ...o, qpn: 1 }), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.createQp({ ...o, qpn: 0x1000000 }), code(VerbsErrorCode.InvalidArgument));
    const other = a.dev.createQp(o);
    assert.notEqual(other, 0x12345);
    a.dev.destroyQp(0x12345);
    assert.equal(a.dev.createQp({ ...o, qpn: 0x12345 }), 0x12345);
    // Chosen QPNs on both sides still connect and carry traffic.
    const [qa, qb] = connectRc(a, b, { qpns: [0x777, 0xabcdef] });
    assert.deepEqual([qa, qb], [0x777, 0xabcdef]);
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 64, lkey: b.mr.lkey }] }]);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [] }]);
    assertOk(await completions(a, 1));
    const [wc] = await completions(b, 1);
    assert.equal(wc.srcQp, 0x777);
    await closeAll(a, b);
  });

  it('refuses unknown handles, busy objects and bad sizes', async () => {
    const { a, b } = pair();
    assert.throws(() => a.dev.deallocPd(999), code(VerbsErrorCode.NoSuchObject));
    assert.throws(() => a.dev.deallocPd(a.pd), code(VerbsErrorCode.Busy));
    assert.throws(() => a.dev.deregMr(0x12345678), code(VerbsErrorCode.NoSuchObject));
    assert.throws(() => a.dev.createCq(0), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.pollCq(77, 1), code(VerbsErrorCode.NoSuchObject));
    const qp = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true });
    assert.throws(() => a.dev.destroyCq(a.cq), code(VerbsErrorCode.Busy));
    assert.throws(() => a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap: { ...cap, maxSendSge: 1000 }, sigAll: true }), code(VerbsErrorCode.InvalidArgument));
    const srq = a.dev.createSrq(a.pd, 8, 1, 0);
    const q2 = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true, srq });
    assert.throws(() => a.dev.destroySrq(srq), code(VerbsErrorCode.Busy));
    assert.throws(() => a.dev.postRecv(q2, []), code(VerbsErrorCode.InvalidArgument));
    a.dev.destroyQp(q2);
    a.dev.destroySrq(srq);
    a.dev.destroyQp(qp);
    const pd2 = a.dev.allocPd();
    a.dev.deallocPd(pd2);
    assert.throws(() => a.dev.createAh(a.pd, { dgid: '1.2.3', sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 }), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.createAh(a.pd, { dgid: b.ip, sgidIndex: 3, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 }), code(VerbsErrorCode.InvalidArgument));
    a.dev.addGid(3, '10.0.0.1');
    assert.throws(() => a.dev.addGid(3, '10.0.0.2'), code(VerbsErrorCode.Exists));
    // A GID that is not this link's address cannot be a source.
    assert.throws(() => a.dev.createAh(a.pd, { dgid: b.ip, sgidIndex: 3, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 }), code(VerbsErrorCode.InvalidArgument));
    a.dev.delGid(3);
    assert.throws(() => a.dev.delGid(3), code(VerbsErrorCode.NoSuchObject));
    await closeAll(a, b);
  });

  it('checks modify-QP transitions, attribute masks and values, and reports them in queryQp', async () => {
    const { a, b } = pair();
    const qp = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true });
    const A = QpAttr;
    assert.throws(() => a.dev.modifyQp(qp, { qpState: QpState.Rtr }, A.STATE), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.modifyQp(qp, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1 }, A.STATE | A.PKEY_INDEX | A.PORT), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.modifyQp(qp, { qpState: QpState.Init, curQpState: QpState.Rts, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, A.STATE | A.CUR_STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.modifyQp(qp, { qpState: QpState.Init, pkeyIndex: 0, portNum: 2, qpAccessFlags: 0 }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS), code(VerbsErrorCode.InvalidArgument));
    a.dev.modifyQp(qp, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_READ }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
    const av = { dgid: b.ip, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 };
    const rtr = { qpState: QpState.Rtr, pathMtu: PathMtu.Mtu2048, destQpNum: 99, rqPsn: 5, maxDestRdAtomic: 4, minRnrTimer: 12, ahAttr: av };
    const rtrMask = A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER;
    assert.throws(() => a.dev.modifyQp(qp, { ...rtr, rqPsn: 1 << 24 }, rtrMask), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.modifyQp(qp, { ...rtr, maxDestRdAtomic: 1000 }, rtrMask), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.modifyQp(qp, { ...rtr, ahAttr: { ...av, dgid: 'x' } }, rtrMask), code(VerbsErrorCode.InvalidArgument));
    a.dev.modifyQp(qp, rtr, rtrMask);
    const q = a.dev.queryQp(qp);
    assert.equal(q.qpState, QpState.Rtr);
    assert.equal(q.pathMtu, PathMtu.Mtu2048);
    assert.equal(q.destQpNum, 99);
    assert.equal(q.rqPsn, 5);
    assert.equal(q.minRnrTimer, 12);
    assert.equal(q.qpAccessFlags, Access.REMOTE_READ);
    assert.equal(q.ahAttr.dgid, b.ip);
    assert.throws(() => a.dev.modifyQp(qp, { qpState: QpState.Rts, sqPsn: 1, timeout: 32, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC), code(VerbsErrorCode.InvalidArgument));
    a.dev.modifyQp(qp, { qpState: QpState.Rts, sqPsn: 1, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
    a.dev.modifyQp(qp, { qpState: QpState.Sqd }, A.STATE);
    a.dev.modifyQp(qp, { qpState: QpState.Rts, minRnrTimer: 3 }, A.STATE | A.MIN_RNR_TIMER);
    assert.equal(a.dev.queryQp(qp).minRnrTimer, 3);
    a.dev.modifyQp(qp, { qpState: QpState.Reset }, A.STATE);
    assert.equal(a.dev.queryQp(qp).qpState, QpState.Reset);
    await closeAll(a, b);
  });

  it('checks work requests at post time', async () => {
    const { a, b } = pair();
    const qp = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true });
    const send = { wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [] };
    assert.throws(() => a.dev.postSend(qp, [send]), code(VerbsErrorCode.InvalidArgument), 'RESET takes no work');
    const [qa] = connectRc(a, b);
    const sge = { addr: BUF_IOVA, length: 1, lkey: a.mr.lkey };
    assert.throws(() => a.dev.postSend(qa, [{ ...send, sgList: [sge, sge, sge, sge, sge] }]), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.postSend(qa, [{ ...send, flags: SendFlags.INLINE, inline: new Uint8Array(1000) }]), code(VerbsErrorCode.InvalidArgument));
    assert.throws(() => a.dev.postSend(qa, [{ ...send, opcode: WrOpcode.LocalInv }]), code(VerbsErrorCode.NotSupported));
    assert.throws(() => a.dev.postSend(qa, [{ ...send, opcode: WrOpcode.RdmaWrite }]), code(VerbsErrorCode.InvalidArgument), 'no remote address');
    assert.throws(() => a.dev.postSend(qa, [{ ...send, opcode: WrOpcode.AtomicFetchAndAdd, remoteAddr: 0, rkey: 1 }]), code(VerbsErrorCode.InvalidArgument), 'no operand');
    assert.throws(() => a.dev.postSend(qa, [{ ...send, sgList: [{ addr: -1, length: 1, lkey: 1 }] }]), code(VerbsErrorCode.InvalidArgument));
    await closeAll(a, b);
  });

  it('reports only signaled sends when sigAll is off; a full send queue refuses with ENOMEM', async () => {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b, { sigAll: false, maxSendWr: 3 });
    b.dev.postRecv(qb, [1n, 2n, 3n].map((wrId) => ({ wrId, sgList: [] })));
    const send = (wrId: bigint, flags: number) => ({ wrId, opcode: WrOpcode.Send, flags, sgList: [] });
    a.dev.postSend(qa, [send(1n, 0), send(2n, SendFlags.SIGNALED), send(3n, 0)]);
    assert.throws(() => a.dev.postSend(qa, [send(4n, 0)]), code(VerbsErrorCode.NoResources));
    await completions(b, 3);
    const wcs = await completions(a, 1);
    assert.equal(wcs[0].wrId, 2n);
    await settle(10);
    assert.equal(a.dev.pollCq(a.cq, 4).length, 0);
    await closeAll(a, b);
  });

  it('reregisters a physical MR onto new pages keeping its keys; registers all memory with iova == gpa', async () => {
    const { a, b } = pair();
    const [qa] = connectRc(a, b);
    const first: Gpa[] = [gpa(BUF_GPA + 0x10000), gpa(BUF_GPA + 0x11000)];
    const second: Gpa[] = [gpa(BUF_GPA + 0x20000), gpa(BUF_GPA + 0x23000)];
    const reg = { iova: 0x9000, length: 8192, access: Access.LOCAL_WRITE | Access.REMOTE_WRITE, pageShift: 12 as const };
    const keys = b.dev.registerPhysical(b.pd, { ...reg, pages: first });
    b.dev.reregisterPhysical(keys.lkey, { ...reg, pages: second });
    const data = pattern(8192, 3);
    fill(a, 0, data);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: 8192, lkey: a.mr.lkey }], remoteAddr: 0x9000, rkey: keys.rkey }]);
    assertOk(await completions(a, 1));
    assert.deepEqual(bytesAt(b, 0x20000, 4096), data.subarray(0, 4096));
    assert.deepEqual(bytesAt(b, 0x23000, 4096), data.subarray(4096));
    assert.ok(bytesAt(b, 0x10000, 8192).every((x) => x === 0), 'the old pages are no longer the MR');
    assert.throws(() => b.dev.reregisterPhysical(keys.lkey, 'all-memory'), code(VerbsErrorCode.InvalidArgument));

    const all = b.dev.registerAll(b.pd, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
    a.dev.postSend(qa, [{ wrId: 2n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: 100, lkey: a.mr.lkey }], remoteAddr: RAM_GPA + 0x300000, rkey: all.rkey }]);
    assertOk(await completions(a, 1));
    assert.deepEqual(b.dm.guest.slice(gpa(RAM_GPA + 0x300000), 100), data.subarray(0, 100));
    b.dev.reregisterPhysical(all.lkey, 'all-memory');
    b.dev.deregMr(all.lkey);
    await closeAll(a, b);
  });

  it('overruns a full CQ: the producing QP goes to ERR and polling fails with EIO', async () => {
    const { a, b } = pair();
    const small = a.dev.createCq(2);
    const qa = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: small, recvCq: small, cap, sigAll: true });
    const [, qb] = connectRc(b, a);
    // Connect qa to qb by hand (connectRc made its own QP on a).
    const A = QpAttr;
    a.dev.modifyQp(qa, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
    a.dev.modifyQp(qa, { qpState: QpState.Rtr, pathMtu: PathMtu.Mtu1024, destQpNum: qb, rqPsn: 0, maxDestRdAtomic: 1, minRnrTimer: 1, ahAttr: { dgid: b.ip, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 } }, A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER);
    a.dev.modifyQp(qa, { qpState: QpState.Rts, sqPsn: 0, timeout: 9, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
    // Reading needs no receive WQE at the peer.
    const read = (wrId: bigint) => ({ wrId, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA, length: 8, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA, rkey: b.mr.rkey });
    let events = 0;
    let notified = 0;
    a.dev.onCqEvent((cq) => { if (cq === small) events++; });
    a.dev.onCompletion((cq) => { if (cq === small) notified++; });
    a.dev.reqNotifyCq(small, false);
    a.dev.postSend(qa, [read(1n), read(2n), read(3n)]);
    for (let i = 0; i < 2000 && a.dev.queryQp(qa).qpState !== QpState.Err; i++) await settle(1);
    assert.equal(a.dev.queryQp(qa).qpState, QpState.Err);
    assert.throws(() => a.dev.pollCq(small, 10), code(VerbsErrorCode.IoError));
    assert.equal(events, 1, 'an armed CQ raises one event');
    assert.ok(notified >= 1);
    await closeAll(a, b);
  });

  it('shares an SRQ between QPs and raises its limit event once', async () => {
    const { a, b } = pair();
    const srq = b.dev.createSrq(b.pd, 16, 1, 3);
    let limitEvents = 0;
    b.dev.onSrqLimit((s) => {
      if (s === srq) limitEvents++;
    });
    const [qa1, qb1] = connectRc(a, b, { srqB: srq });
    const [qa2, qb2] = connectRc(a, b, { srqB: srq });
    b.dev.postSrqRecv(srq, Array.from({ length: 5 }, (_, i) => ({ wrId: BigInt(i), sgList: [{ addr: BUF_IOVA + i * 4096, length: 4096, lkey: b.mr.lkey }] })));
    assert.throws(() => b.dev.postSrqRecv(srq, [{ wrId: 9n, sgList: [{ addr: 0, length: 1, lkey: 1 }, { addr: 0, length: 1, lkey: 1 }] }]), code(VerbsErrorCode.InvalidArgument));
    const send = (wrId: bigint) => ({ wrId, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 10 + Number(wrId), lkey: a.mr.lkey }] });
    a.dev.postSend(qa1, [send(1n), send(2n)]);
    assertOk(await completions(a, 2));
    a.dev.postSend(qa2, [send(3n), send(4n)]);
    assertOk(await completions(a, 2));
    const recvs = await completions(b, 4);
    assertOk(recvs);
    assert.deepEqual(recvs.map((w) => [w.wrId, w.qpNum, w.byteLen]), [[0n, qb1, 11], [1n, qb1, 12], [2n, qb2, 13], [3n, qb2, 14]]);
    await settle(1);
    assert.equal(limitEvents, 1, 'the limit event fires once, then the SRQ is disarmed');
    await closeAll(a, b);
  });

  it('flushes outstanding receives when a QP is destroyed', async () => {
    const { a, b } = pair();
    const [, qb] = connectRc(a, b);
    b.dev.postRecv(qb, [1n, 2n].map((wrId) => ({ wrId, sgList: [] })));
    b.dev.destroyQp(qb);
    const wcs = await completions(b, 2);
    assert.deepEqual(wcs.map((w) => w.status), [WcStatus.WrFlushErr, WcStatus.WrFlushErr]);
    await closeAll(a, b);
  });
});
