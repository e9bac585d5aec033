// Every control command's success path through the guest library, checked against the spec's
// response layouts and against what the provider was asked to do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, AttrMask, DeviceCap, EventType, NotifyFlag, QpTypeCode, RdmaFeature, featureBit } from '../../src/device/abi.js';
import { CONFIG_BYTES, decodeConfig } from '../../src/device/config.js';
import { ahAttr } from '../../src/guest/rdma/device.js';
import { QpState } from '../../src/nic/qp-state.js';
import { DATA_AREA, RC, SECOND_IP, UD, VM_IP, basicQp, rig, toRts } from './harness.js';

describe('virtio-rdma commands: success paths', () => {
  it('QUERY_DEVICE and QUERY_PORT report the config space limits', async () => {
    const r = rig();
    const cfg = decodeConfig(r.device.transport.readConfig(0, CONFIG_BYTES));
    const d = await r.guest.queryDevice();
    assert.equal(Number(d.getBigUint64(0, true)), cfg.deviceCapFlags);
    assert.ok(cfg.deviceCapFlags & DeviceCap.RC_RNR_NAK_GEN);
    assert.equal(Number(d.getBigUint64(8, true)), cfg.maxMrSize);
    assert.equal(Number(d.getBigUint64(16, true)), 2 ** 12 + 2 ** 21);
    assert.equal(d.getUint32(24, true), 1);
    assert.equal(d.getUint32(28, true), cfg.maxQpWr);
    assert.equal(d.getUint32(44, true), cfg.maxCqe);
    assert.equal(d.getUint32(72, true), 8);
    assert.equal(d.getUint32(76, true), 8);
    assert.equal(d.getUint32(80, true), 4);
    assert.equal(d.getUint32(92, true), 256);
    assert.equal(d.getUint32(104, true), 42);
    assert.equal(d.getBigUint64(112, true), cfg.sysImageGuid);
    assert.equal(d.getUint32(108, true), 0, 'reserved');
    const p = await r.guest.queryPort();
    assert.deepEqual(p, {
      gidTblLen: 16, maxMsgSz: 2 ** 30, state: 4, maxMtu: 5, activeMtu: 5, physState: 5, portCapFlags: (1 << 16) | (1 << 26), pkeyTblLen: 1, linkLayer: 2,
    });
    assert.equal(cfg.defaultGid, VM_IP);
  });

  it('creates and destroys PDs, CQs, AHs and GIDs', async () => {
    const r = rig();
    const pd = await r.guest.createPd();
    assert.ok(pd >= 1);
    const cq = await r.guest.createCq(32);
    assert.equal(cq.cqn, 0, 'lowest free index');
    assert.equal(cq.vq, 1);
    const cq2 = await r.guest.createCq(8);
    assert.equal(cq2.cqn, 1);
    await cq.destroy();
    const cq3 = await r.guest.createCq(8);
    assert.equal(cq3.cqn, 0, 'a freed index is reused first');
    await r.guest.addGid(1, SECOND_IP);
    await r.guest.addGid(1, SECOND_IP); // the same GID again: OK
    const ah = await r.guest.createAh(pd, ahAttr('127.0.3.3', 1));
    assert.equal(r.verbs.ahs.size, 1);
    assert.equal([...r.verbs.ahs.values()][0].av.dgid, '127.0.3.3');
    assert.equal([...r.verbs.ahs.values()][0].av.hopLimit, 64, 'hop_limit 0 means the default');
    await r.guest.destroyAh(pd, ah);
    await r.guest.delGid(1);
    assert.equal(r.verbs.gids.size, 0);
    await cq2.destroy();
    await cq3.destroy();
    await r.guest.destroyPd(pd);
    assert.equal(r.verbs.census(), 'pd=0 mr=0 cq=0 qp=0[] srq=0 ah=0 gid=');
  });

  it('registers DMA, user and physical MRs (inline and indirect lists), re-registers keeping keys, advises, deregisters', async () => {
    const r = rig();
    const pd = await r.guest.createPd();
    const pd2 = await r.guest.createPd();
    const dma = await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
    assert.equal([...r.verbs.mrs.values()][0].reg, 'all-memory');
    const user = await r.guest.regUserMr(pd, AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE, 0x7f0000001100, 8192, [DATA_AREA, DATA_AREA + 0x5000, DATA_AREA + 0x1000]);
    const userReg = r.verbs.mrs.get(user.lkey)?.reg;
    assert.ok(userReg !== undefined && userReg !== 'all-memory');
    assert.equal(userReg.iova, 0x7f0000001100);
    assert.equal(userReg.pageShift, 12);
    assert.deepEqual(userReg.pages, [DATA_AREA, DATA_AREA + 0x5000, DATA_AREA + 0x1000]);
    const phys = await r.guest.regPhysMr(pd, AccessFlag.LOCAL_WRITE, { iova: 0x200000, length: 3 * 2 ** 21, pageShift: 21, pages: [0, 2 ** 21, 0], indirect: true, invalidatable: true });
    const physReg = r.verbs.mrs.get(phys.lkey)?.reg;
    assert.ok(physReg !== undefined && physReg !== 'all-memory');
    assert.deepEqual(physReg.pages, [0, 2 ** 21, 0], 'pages may repeat');
    assert.equal(physReg.invalidatable, true);
    const keys = await r.guest.reregPhysMr(phys.mrn, { translation: { iova: 0x1000, length: 4096, pageShift: 12, pages: [DATA_AREA] } });
    assert.deepEqual(keys, { lkey: phys.lkey, rkey: phys.rkey });
    const after = r.verbs.mrs.get(phys.lkey)?.reg;
    assert.ok(after !== undefined && after !== 'all-memory');
    assert.deepEqual(after.pages, [DATA_AREA]);
    await r.guest.reregPhysMr(phys.mrn, { access: AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_READ, pdn: pd2 });
    assert.equal(r.verbs.mrs.get(phys.lkey)?.access, AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_READ);
    assert.equal(r.verbs.mrs.get(phys.lkey)?.pd, [...r.verbs.pds][1]);
    await r.guest.adviseMr(1, 1, [{ addr: 0x1000, length: 4096, lkey: phys.lkey }, { addr: 0, length: 100, lkey: dma.lkey }]);
    assert.equal(r.verbs.advised.length, 1);
    for (const mr of [dma, user, phys]) await r.guest.deregMr(mr.mrn);
    assert.equal(r.verbs.mrs.size, 0);
  });

  it('creates an RC QP, walks it to RTS, queries it, and destroys it', async () => {
    const r = rig();
    const { cq, qp } = await basicQp(r);
    assert.ok(qp.qpn >= 16);
    assert.equal(qp.index, 0);
    assert.equal(qp.sq.vq, 1 + 8);
    assert.equal(qp.rq.vq, 1 + 8 + 1);
    assert.deepEqual(qp.cap, { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 });
    await toRts(qp);
    assert.equal(r.verbs.stateOf(qp.qpn), QpState.Rts);
    const rec = r.verbs.qps.get(qp.qpn);
    assert.equal(rec?.options.sigAll, true, 'the provider signals every send');
    assert.equal(rec?.attrs.pkeyIndex, 0, 'RESET -> INIT defaults PKEY_INDEX');
    assert.equal(rec?.attrs.portNum, 1, 'and PORT');
    const a = await qp.query();
    assert.equal(a.qpState, QpState.Rts);
    assert.equal(a.curQpState, QpState.Rts);
    assert.equal(a.destQpNum, 77);
    assert.equal(a.sqPsn, 200);
    assert.equal(a.rqPsn, 100);
    assert.equal(a.pathMtu, 5);
    assert.equal(a.maxDestRdAtomic, 4);
    assert.equal(a.ahAttr.dgid[15], 9);
    assert.equal(a.ahAttr.portNum, 1);
    assert.deepEqual(a.cap, qp.cap);
    // RTS -> SQD -> RTS, and an RTS -> RTS with an optional attribute.
    await qp.modify(AttrMask.STATE, { qpState: QpState.Sqd });
    await qp.modify(AttrMask.STATE | AttrMask.CUR_STATE, { qpState: QpState.Rts, curQpState: QpState.Sqd });
    await qp.modify(AttrMask.MIN_RNR_TIMER, { minRnrTimer: 3 });
    await qp.destroy();
    await cq.destroy();
    assert.equal(r.verbs.qps.size, 0);
  });

  it('creates UD and GSI QPs; GSI has QPN 1', async () => {
    const r = rig();
    const { pd, cq, qp } = await basicQp(r, UD);
    await toRts(qp, UD);
    const gsi = await r.guest.createQp({ pd, type: QpTypeCode.GSI as number, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
    assert.equal(gsi.qpn, 1);
    assert.equal(gsi.index, 1);
    await gsi.destroy();
  });

  it('runs the same over the TypeScript twin of the ring kernels', async () => {
    const r = rig({ device: { engine: 'ts' } });
    const { cq, qp } = await basicQp(r);
    await toRts(qp);
    qp.postSend([{ wrId: 3n, opcode: 2, flags: 2 }]);
    r.verbs.completeSend(qp.qpn);
    assert.deepEqual(cq.poll().map((c) => c.wrId), [3n]);
  });

  it('REQ_NOTIFY_CQ returns cqes_written', async () => {
    const r = rig();
    const cq = await r.guest.createCq(4);
    assert.equal(await r.guest.reqNotifyCq(cq.cqn, NotifyFlag.SOLICITED), 0);
    assert.equal(await r.guest.reqNotifyCq(cq.cqn, NotifyFlag.NEXT_COMPLETION), 0);
    assert.equal(r.device.core.cqs[cq.cqn]?.armed, NotifyFlag.NEXT_COMPLETION);
  });

  it('SRQs: create, query, arm the limit, attach a QP, destroy', async () => {
    const r = rig();
    const pd = await r.guest.createPd();
    const cq = await r.guest.createCq(16);
    const srq = await r.guest.createSrq(pd, 64, 2, 0);
    assert.equal(srq.srqn, 1);
    assert.equal(srq.index, 0);
    assert.equal(srq.wq.vq, 1 + 8 + 16);
    assert.deepEqual(await srq.query(), { maxWr: 64, maxSge: 2, limit: 0 });
    await srq.modifyLimit(10);
    assert.deepEqual(await srq.query(), { maxWr: 64, maxSge: 2, limit: 10 });
    assert.equal([...r.verbs.srqs.values()][0].limit, 10);
    const qp = await r.guest.createQp({ pd, type: RC as number, sendCq: cq.cqn, recvCq: cq.cqn, srq: srq.srqn, cap: { maxSendWr: 4, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 0, maxInlineData: 0 } });
    assert.equal(r.verbs.qps.get(qp.qpn)?.options.srq, [...r.verbs.srqs.keys()][0]);
    await qp.destroy();
    await srq.destroy();
    assert.equal(r.verbs.srqs.size, 0);
  });

  it('negotiates a subset: commands of features not negotiated are refused', async () => {
    const r = rig({ open: { features: featureBit(32) | featureBit(40) } });
    assert.ok(!r.guest.has(RdmaFeature.SRQ));
    const pd = await r.guest.createPd();
    await assert.rejects(r.guest.createSrq(pd, 4, 1), /NOT_SUPPORTED/);
    await assert.rejects(r.guest.regPhysMr(pd, 1, { iova: 0, length: 4096, pageShift: 12, pages: [DATA_AREA] }), /NOT_SUPPORTED/);
    await assert.rejects(r.guest.createAh(pd, ahAttr('127.0.3.3')), /NOT_SUPPORTED/);
    assert.deepEqual(r.guest.pollEvents(), [], 'no event queue without F_EVENTQ');
    void EventType;
  });
});
