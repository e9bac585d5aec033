// Every command's error paths (§6 framing checks, §7 per-command statuses): each gets its status
// and changes nothing, neither in the device nor in the provider.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, AttrMask, Cmd, RdmaStatus, SrqAttr } from '../../src/device/abi.js';
import { ipv4ToGid } from '../../src/device/bytes.js';
import { writeAhAttr, writeQpAttr } from '../../src/device/structs.js';
import { RdmaCommandError } from '../../src/guest/rdma/errors.js';
import { ahAttr, qpAttr } from '../../src/guest/rdma/device.js';
import { QpState } from '../../src/nic/qp-state.js';
import { DATA_AREA, RC, SECOND_IP, UD, rig, snapshot, toRts, type Rig } from './harness.js';
import { VerbsError, VerbsErrorCode } from '../../src/nic/errors.js';

function bytes(size: number, fill: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  return b;
}
const u32s = (...xs: number[]) => bytes(4 * xs.length, (v) => xs.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true)));

interface World {
  pd: number;
  pd2: number;
  cq: number;
  qpn: number;
  udQpn: number;
  mrn: number;
  dmaMrn: number;
  lkey: number;
  srqn: number;
  ah: number;
}

async function world(r: Rig): Promise<World> {
  const g = r.guest;
  const pd = await g.createPd();
  const pd2 = await g.createPd();
  const cq = await g.createCq(8);
  const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
  const qp = await g.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, cap });
  const ud = await g.createQp({ pd, type: UD, sendCq: cq.cqn, recvCq: cq.cqn, cap });
  const mr = await g.regPhysMr(pd, AccessFlag.LOCAL_WRITE, { iova: 0x10000, length: 4096, pageShift: 12, pages: [DATA_AREA] });
  const dma = await g.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
  const srq = await g.createSrq(pd, 8, 1);
  await g.addGid(1, SECOND_IP);
  const ah = await g.createAh(pd, ahAttr('127.0.9.9', 1));
  return { pd, pd2, cq: cq.cqn, qpn: qp.qpn, udQpn: ud.qpn, mrn: mr.mrn, dmaMrn: dma.mrn, lkey: mr.lkey, srqn: srq.srqn, ah };
}

interface Case {
  name: string;
  cmd: Cmd;
  body: (w: World) => Uint8Array;
  resp: number;
  status: RdmaStatus;
  before?: (r: Rig, w: World) => Promise<void> | void;
}

const ah = (fields: Parameters<typeof ahAttr>[2] = {}, dgid = '127.0.9.9', sgid = 0) => (pd: number) =>
  bytes(48, (v) => {
    v.setUint32(0, pd, true);
    writeAhAttr(v, 8, ahAttr(dgid, sgid, fields));
  });

const modify = (mask: number, fields: Parameters<typeof qpAttr>[0], extra?: (v: DataView) => void) => (qpn: number) =>
  bytes(128, (v) => {
    v.setUint32(0, qpn, true);
    v.setUint32(4, mask, true);
    writeQpAttr(v, 8, qpAttr(fields));
    extra?.(v);
  });

const createQp = (w: World, over: (v: DataView) => void) =>
  bytes(56, (v) => {
    v.setUint32(0, w.pd, true);
    v.setUint8(4, RC);
    v.setUint32(8, w.cq, true);
    v.setUint32(12, w.cq, true);
    [4, 4, 1, 1, 0].forEach((x, i) => v.setUint32(16 + 4 * i, x, true));
    over(v);
  });

const physMr = (w: World, over: (v: DataView) => void, pages = [DATA_AREA]) =>
  bytes(48 + 8 * pages.length, (v) => {
    v.setUint32(0, w.pd, true);
    v.setUint32(4, AccessFlag.LOCAL_WRITE, true);
    v.setBigUint64(8, 0x10000n, true);
    v.setBigUint64(16, 4096n, true);
    v.setUint32(24, 12, true);
    v.setUint32(32, pages.length, true);
    pages.forEach((p, i) => v.setBigUint64(48 + 8 * i, BigInt(p), true));
    over(v);
  });

const S = RdmaStatus;
const CASES: Case[] = [
  // Framing (§6).
  { name: 'unknown command 18', cmd: 18 as Cmd, body: () => new Uint8Array(0), resp: 0, status: S.NotSupported },
  { name: 'unknown command 39', cmd: 39 as Cmd, body: () => new Uint8Array(0), resp: 0, status: S.NotSupported },
  { name: 'ADVISE_MR without a provider that can', cmd: Cmd.AdviseMr, body: () => u32s(0, 0, 1, 0, 0, 0, 0, 0), resp: 0, status: S.BadHandle },
  { name: 'short fixed part', cmd: Cmd.CreateCq, body: () => u32s(4), resp: 16, status: S.InvalidArg },
  { name: 'non-zero bytes past a fixed command', cmd: Cmd.DestroyPd, body: (w) => u32s(w.pd, 1), resp: 0, status: S.InvalidArg },
  { name: 'response buffer too short', cmd: Cmd.CreatePd, body: () => new Uint8Array(0), resp: 0, status: S.InvalidArg },
  { name: 'tail disagreeing with npages', cmd: Cmd.RegUserMr, body: (w) => bytes(40, (v) => { v.setUint32(0, w.pd, true); v.setUint32(24, 2, true); }), resp: 12, status: S.InvalidArg },
  { name: 'npages above the limit', cmd: Cmd.RegUserMr, body: (w) => bytes(32, (v) => { v.setUint32(0, w.pd, true); v.setUint32(24, 0xffffffff, true); }), resp: 12, status: S.InvalidArg },
  // PD.
  { name: 'DESTROY_PD of no PD', cmd: Cmd.DestroyPd, body: () => u32s(999), resp: 0, status: S.BadHandle },
  { name: 'DESTROY_PD of handle 0', cmd: Cmd.DestroyPd, body: () => u32s(0), resp: 0, status: S.BadHandle },
  { name: 'DESTROY_PD with objects', cmd: Cmd.DestroyPd, body: (w) => u32s(w.pd), resp: 0, status: S.Busy },
  { name: 'CREATE_PD when the provider is out', cmd: Cmd.CreatePd, body: () => new Uint8Array(0), resp: 4, status: S.NoResources, before: (r) => { r.verbs.failNext = { method: 'allocPd', error: new VerbsError(VerbsErrorCode.NoResources, 'out') }; } },
  // CQ.
  { name: 'CREATE_CQ depth 0', cmd: Cmd.CreateCq, body: () => u32s(0, 0), resp: 16, status: S.InvalidArg },
  { name: 'CREATE_CQ depth above max_cqe', cmd: Cmd.CreateCq, body: () => u32s(4097, 0), resp: 16, status: S.InvalidArg },
  { name: 'CREATE_CQ reserved flags', cmd: Cmd.CreateCq, body: () => u32s(4, 1), resp: 16, status: S.InvalidArg },
  { name: 'DESTROY_CQ in use', cmd: Cmd.DestroyCq, body: (w) => u32s(w.cq), resp: 0, status: S.Busy },
  { name: 'DESTROY_CQ of no CQ', cmd: Cmd.DestroyCq, body: () => u32s(7), resp: 0, status: S.BadHandle },
  { name: 'REQ_NOTIFY_CQ both flags', cmd: Cmd.ReqNotifyCq, body: (w) => u32s(w.cq, 3), resp: 4, status: S.InvalidArg },
  { name: 'REQ_NOTIFY_CQ no flag', cmd: Cmd.ReqNotifyCq, body: (w) => u32s(w.cq, 0), resp: 4, status: S.InvalidArg },
  { name: 'REQ_NOTIFY_CQ of no CQ', cmd: Cmd.ReqNotifyCq, body: () => u32s(5, 1), resp: 4, status: S.BadHandle },
  // MR.
  { name: 'GET_DMA_MR unknown access bit', cmd: Cmd.GetDmaMr, body: (w) => u32s(w.pd, 0x10), resp: 12, status: S.InvalidArg },
  { name: 'GET_DMA_MR REMOTE_WRITE without LOCAL_WRITE', cmd: Cmd.GetDmaMr, body: (w) => u32s(w.pd, AccessFlag.REMOTE_WRITE), resp: 12, status: S.InvalidArg },
  { name: 'GET_DMA_MR of no PD', cmd: Cmd.GetDmaMr, body: () => u32s(77, 1), resp: 12, status: S.BadHandle },
  { name: 'REG_PHYS_MR length 0', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setBigUint64(16, 0n, true)), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR iova + length past 2^53', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setBigUint64(8, 2n ** 53n - 2048n, true)), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR page_shift 30 (not in page_size_cap)', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setUint32(24, 30, true)), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR offset not iova mod page size', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setUint32(28, 16, true), [DATA_AREA]), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR npages wrong', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, () => {}, [DATA_AREA, DATA_AREA]), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR page misaligned', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, () => {}, [DATA_AREA + 8]), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR unknown flags', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setUint32(36, 4, true)), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR list_gpa without INDIRECT', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setBigUint64(40, 8n, true)), resp: 16, status: S.InvalidArg },
  { name: 'REG_PHYS_MR page not guest RAM', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, () => {}, [2 ** 40]), resp: 16, status: S.Fault },
  { name: 'REG_PHYS_MR indirect list not guest RAM', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => { v.setUint32(32, 1, true); v.setUint32(36, 1, true); v.setBigUint64(40, 2n ** 40n, true); }, []), resp: 16, status: S.Fault },
  { name: 'REG_PHYS_MR of no PD', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, (v) => v.setUint32(0, 55, true)), resp: 16, status: S.BadHandle },
  { name: 'REG_PHYS_MR provider page table full', cmd: Cmd.RegPhysMr, body: (w) => physMr(w, () => {}), resp: 16, status: S.NoResources, before: (r) => { r.verbs.failNext = { method: 'registerPhysical', error: new VerbsError(VerbsErrorCode.NoResources, 'pages') }; } },
  { name: 'REG_USER_MR length 0', cmd: Cmd.RegUserMr, body: (w) => bytes(32, (v) => v.setUint32(0, w.pd, true)), resp: 12, status: S.InvalidArg },
  { name: 'REREG_PHYS_MR no flag', cmd: Cmd.ReregPhysMr, body: (w) => bytes(56, (v) => v.setUint32(0, w.mrn, true)), resp: 8, status: S.InvalidArg },
  { name: 'REREG_PHYS_MR pdn without CHANGE_PD', cmd: Cmd.ReregPhysMr, body: (w) => bytes(56, (v) => { v.setUint32(0, w.mrn, true); v.setUint32(4, 4, true); v.setUint32(8, w.pd, true); }), resp: 8, status: S.InvalidArg },
  { name: 'REREG_PHYS_MR of the DMA MR', cmd: Cmd.ReregPhysMr, body: (w) => bytes(56, (v) => { v.setUint32(0, w.dmaMrn, true); v.setUint32(4, 4, true); v.setUint32(12, 1, true); }), resp: 8, status: S.InvalidArg },
  { name: 'REREG_PHYS_MR of no MR', cmd: Cmd.ReregPhysMr, body: () => bytes(56, (v) => { v.setUint32(0, 99, true); v.setUint32(4, 4, true); v.setUint32(12, 1, true); }), resp: 8, status: S.BadHandle },
  { name: 'REREG_PHYS_MR to no PD', cmd: Cmd.ReregPhysMr, body: (w) => bytes(56, (v) => { v.setUint32(0, w.mrn, true); v.setUint32(4, 2, true); v.setUint32(8, 99, true); }), resp: 8, status: S.BadHandle },
  { name: 'REREG_PHYS_MR provider failure', cmd: Cmd.ReregPhysMr, body: (w) => bytes(56, (v) => { v.setUint32(0, w.mrn, true); v.setUint32(4, 4, true); v.setUint32(12, 5, true); }), resp: 8, status: S.NoResources, before: (r) => { r.verbs.failNext = { method: 'reregisterPhysical', error: new VerbsError(VerbsErrorCode.NoResources, 'x') }; } },
  { name: 'DEREG_MR of no MR', cmd: Cmd.DeregMr, body: () => u32s(1234), resp: 0, status: S.BadHandle },
  { name: 'ADVISE_MR bad advice', cmd: Cmd.AdviseMr, body: (w) => bytes(32, (v) => { v.setUint32(0, 3, true); v.setUint32(8, 1, true); v.setUint32(28, w.lkey, true); }), resp: 0, status: S.InvalidArg },
  { name: 'ADVISE_MR range outside its MR', cmd: Cmd.AdviseMr, body: (w) => bytes(32, (v) => { v.setUint32(8, 1, true); v.setBigUint64(16, 0x10000n, true); v.setUint32(24, 4097, true); v.setUint32(28, w.lkey, true); }), resp: 0, status: S.InvalidArg },
  // QP.
  { name: 'CREATE_QP SMI', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(4, 0)), resp: 32, status: S.NotSupported },
  { name: 'CREATE_QP UC', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(4, 3)), resp: 32, status: S.NotSupported },
  { name: 'CREATE_QP type 9', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(4, 9)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP sq_sig_all 2', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(5, 2)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP reserved byte', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(50, 1)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP max_send_wr above the limit', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint32(16, 1025, true)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP SRQ with receive caps', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => { v.setUint32(40, w.srqn, true); v.setUint32(44, 1, true); }), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP srqn without USE_SRQ', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint32(40, w.srqn, true)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP unknown flags', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint32(44, 2, true)), resp: 32, status: S.InvalidArg },
  { name: 'CREATE_QP of no CQ', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint32(12, 6, true)), resp: 32, status: S.BadHandle },
  { name: 'CREATE_QP SRQ of another PD', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => { v.setUint32(0, w.pd2, true); v.setUint32(40, w.srqn, true); v.setUint32(44, 1, true); v.setUint32(20, 0, true); v.setUint32(28, 0, true); }), resp: 32, status: S.BadHandle },
  { name: 'CREATE_QP second GSI', cmd: Cmd.CreateQp, body: (w) => createQp(w, (v) => v.setUint8(4, 1)), resp: 32, status: S.Exists, before: async (r, w) => { await r.guest.createQp({ pd: w.pd, type: 1, sendCq: w.cq, recvCq: w.cq, cap: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } }); } },
  { name: 'CREATE_QP provider failure', cmd: Cmd.CreateQp, body: (w) => createQp(w, () => {}), resp: 32, status: S.NoResources, before: (r) => { r.verbs.failNext = { method: 'createQp', error: new VerbsError(VerbsErrorCode.NoResources, 'qpn') }; } },
  { name: 'MODIFY_QP unknown mask bit', cmd: Cmd.ModifyQp, body: (w) => modify(1 << 20, {})(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP CAP', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.CAP, {})(w.qpn), resp: 0, status: S.NotSupported },
  { name: 'MODIFY_QP rate limit', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.RATE_LIMIT, { rateLimit: 100 })(w.qpn), resp: 0, status: S.NotSupported },
  { name: 'MODIFY_QP RESET -> RTS', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE, { qpState: QpState.Rts })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP RESET -> INIT without ACCESS_FLAGS (RC)', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE, { qpState: QpState.Init })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP state 7', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE, { qpState: 7 })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP port 2', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS | AttrMask.PORT, { qpState: 1, portNum: 2 })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP cur_qp_state RESET asserted', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS | AttrMask.CUR_STATE, { qpState: 1, curQpState: 0 })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP reserved bytes', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE, { qpState: QpState.Err }, (v) => v.setUint8(8 + 110, 1))(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP AV dgid not IPv4-mapped', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.AV, { ahAttr: { ...ahAttr('1.2.3.4'), dgid: new Uint8Array(16).fill(0xfe) } })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP AV empty sgid_index', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.AV, { ahAttr: ahAttr('1.2.3.4', 5) })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP AV static rate', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.AV, { ahAttr: ahAttr('1.2.3.4', 0, { staticRate: 3 }) })(w.qpn), resp: 0, status: S.NotSupported },
  { name: 'MODIFY_QP sq_psn 2^24', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.SQ_PSN, { sqPsn: 1 << 24 })(w.qpn), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_QP of no QP', cmd: Cmd.ModifyQp, body: () => modify(AttrMask.STATE, { qpState: QpState.Err })(4242), resp: 0, status: S.BadHandle },
  { name: 'MODIFY_QP provider refusal', cmd: Cmd.ModifyQp, body: (w) => modify(AttrMask.STATE, { qpState: QpState.Err })(w.qpn), resp: 0, status: S.Busy, before: (r) => { r.verbs.failNext = { method: 'modifyQp', error: new VerbsError(VerbsErrorCode.Busy, 'x') }; } },
  { name: 'QUERY_QP of no QP', cmd: Cmd.QueryQp, body: () => u32s(4242, 0), resp: 120, status: S.BadHandle },
  { name: 'DESTROY_QP of no QP', cmd: Cmd.DestroyQp, body: () => u32s(0), resp: 0, status: S.BadHandle },
  // AH.
  { name: 'CREATE_AH dgid not IPv4-mapped', cmd: Cmd.CreateAh, body: (w) => bytes(48, (v) => { v.setUint32(0, w.pd, true); writeAhAttr(v, 8, { ...ahAttr('1.1.1.1'), dgid: new Uint8Array(16) }); }), resp: 4, status: S.InvalidArg },
  { name: 'CREATE_AH sgid empty', cmd: Cmd.CreateAh, body: (w) => ah({}, '1.1.1.1', 3)(w.pd), resp: 4, status: S.InvalidArg },
  { name: 'CREATE_AH port 2', cmd: Cmd.CreateAh, body: (w) => ah({ portNum: 2 })(w.pd), resp: 4, status: S.InvalidArg },
  { name: 'CREATE_AH reserved', cmd: Cmd.CreateAh, body: (w) => ah({ ahFlags: 2 })(w.pd), resp: 4, status: S.InvalidArg },
  { name: 'CREATE_AH static rate', cmd: Cmd.CreateAh, body: (w) => ah({ staticRate: 1 })(w.pd), resp: 4, status: S.NotSupported },
  { name: 'CREATE_AH of no PD', cmd: Cmd.CreateAh, body: () => ah()(77), resp: 4, status: S.BadHandle },
  { name: 'DESTROY_AH of another PD', cmd: Cmd.DestroyAh, body: (w) => u32s(w.pd2, w.ah), resp: 0, status: S.BadHandle },
  { name: 'DESTROY_AH of no AH', cmd: Cmd.DestroyAh, body: (w) => u32s(w.pd, 99), resp: 0, status: S.BadHandle },
  // GID.
  { name: 'ADD_GID index 0', cmd: Cmd.AddGid, body: () => bytes(24, (v) => new Uint8Array(v.buffer).set(ipv4ToGid(SECOND_IP), 8)), resp: 0, status: S.AccessDenied },
  { name: 'ADD_GID index out of range', cmd: Cmd.AddGid, body: () => bytes(24, (v) => { v.setUint16(0, 16, true); new Uint8Array(v.buffer).set(ipv4ToGid(SECOND_IP), 8); }), resp: 0, status: S.InvalidArg },
  { name: 'ADD_GID not assigned to the VM', cmd: Cmd.AddGid, body: () => bytes(24, (v) => { v.setUint16(0, 2, true); new Uint8Array(v.buffer).set(ipv4ToGid('10.0.0.1'), 8); }), resp: 0, status: S.AccessDenied },
  { name: 'ADD_GID not IPv4-mapped', cmd: Cmd.AddGid, body: () => bytes(24, (v) => v.setUint16(0, 2, true)), resp: 0, status: S.InvalidArg },
  { name: 'ADD_GID a different GID at a taken index', cmd: Cmd.AddGid, body: () => bytes(24, (v) => { v.setUint16(0, 1, true); new Uint8Array(v.buffer).set(ipv4ToGid('127.0.1.5'), 8); }), resp: 0, status: S.Exists },
  { name: 'ADD_GID reserved', cmd: Cmd.AddGid, body: () => bytes(24, (v) => { v.setUint16(0, 2, true); v.setUint8(3, 1); new Uint8Array(v.buffer).set(ipv4ToGid(SECOND_IP), 8); }), resp: 0, status: S.InvalidArg },
  { name: 'DEL_GID index 0', cmd: Cmd.DelGid, body: () => u32s(0), resp: 0, status: S.AccessDenied },
  { name: 'DEL_GID empty', cmd: Cmd.DelGid, body: () => u32s(3), resp: 0, status: S.BadHandle },
  { name: 'DEL_GID in use by an AH', cmd: Cmd.DelGid, body: () => u32s(1), resp: 0, status: S.Busy },
  // SRQ.
  { name: 'CREATE_SRQ max_wr 0', cmd: Cmd.CreateSrq, body: (w) => u32s(w.pd, 0, 1, 0), resp: 16, status: S.InvalidArg },
  { name: 'CREATE_SRQ max_sge above the limit', cmd: Cmd.CreateSrq, body: (w) => u32s(w.pd, 4, 17, 0), resp: 16, status: S.InvalidArg },
  { name: 'CREATE_SRQ limit >= max_wr', cmd: Cmd.CreateSrq, body: (w) => u32s(w.pd, 4, 1, 4), resp: 16, status: S.InvalidArg },
  { name: 'CREATE_SRQ of no PD', cmd: Cmd.CreateSrq, body: () => u32s(88, 4, 1, 0), resp: 16, status: S.BadHandle },
  { name: 'MODIFY_SRQ resize', cmd: Cmd.ModifySrq, body: (w) => u32s(w.srqn, SrqAttr.MAX_WR, 16, 0), resp: 0, status: S.NotSupported },
  { name: 'MODIFY_SRQ unknown mask', cmd: Cmd.ModifySrq, body: (w) => u32s(w.srqn, 4, 0, 0), resp: 0, status: S.InvalidArg },
  { name: 'MODIFY_SRQ of srqn 0', cmd: Cmd.ModifySrq, body: () => u32s(0, SrqAttr.LIMIT, 0, 1), resp: 0, status: S.BadHandle },
  { name: 'QUERY_SRQ of no SRQ', cmd: Cmd.QuerySrq, body: () => u32s(4), resp: 16, status: S.BadHandle },
  { name: 'DESTROY_SRQ of no SRQ', cmd: Cmd.DestroySrq, body: () => u32s(9), resp: 0, status: S.BadHandle },
];

describe('command errors: each has its status and changes nothing', () => {
  for (const c of CASES) {
    it(`${Cmd[c.cmd] ?? c.cmd}: ${c.name} -> ${RdmaStatus[c.status]}`, async () => {
      const r = rig();
      const w = await world(r);
      await c.before?.(r, w);
      const before = snapshot(r);
      await assert.rejects(r.guest.control.command(c.cmd, c.body(w), c.resp), (err: unknown) => {
        assert.ok(err instanceof RdmaCommandError, String(err));
        assert.equal(RdmaStatus[err.status], RdmaStatus[c.status], `${err.message}; last failure: ${String(r.device.control.lastFailure)}`);
        return true;
      });
      assert.equal(snapshot(r), before);
    });
  }

  it('BUSY and stale handles: DESTROY_SRQ in use, REREG CHANGE_PD with work in flight, a destroyed QP', async () => {
    const r = rig();
    const w = await world(r);
    const cq = r.device.core.cq(w.cq);
    const qp = await r.guest.createQp({ pd: w.pd, type: RC, sendCq: cq.index, recvCq: cq.index, srq: w.srqn, cap: { maxSendWr: 2, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 0, maxInlineData: 0 } });
    await assert.rejects(r.guest.destroySrqCommand(w.srqn), /BUSY/);
    await toRts(qp);
    qp.postSend([{ wrId: 1n, opcode: 2, sgList: [{ addr: 0x10000, length: 8, lkey: w.lkey }] }]);
    const before = snapshot(r);
    await assert.rejects(r.guest.reregPhysMr(w.mrn, { pdn: w.pd2 }), /BUSY/);
    assert.equal(snapshot(r), before);
    await qp.destroy();
    await assert.rejects(r.guest.queryQp(qp.qpn), /BAD_HANDLE/);
    await r.guest.reregPhysMr(w.mrn, { pdn: w.pd2 });
  });
});
