// QP commands (docs/device-spec.md §7.10–§7.14): creation with the QP index and QPN kept apart
// (§5.2), modification through the IBTA transition table of the verbs layer (qp-state.ts) with
// the spec's mask bits translated to verbs', query, destroy.
import { QpAttr, QpState, QpType, checkTransition } from '../nic/qp-state.js';
import type { PathMtu } from '../nic/types.js';
import type { AddressVector, QpAttributes } from '../nic/verbs.js';
import { ATTR_MASK_KNOWN, AttrMask, CREATE_QP_F_USE_SRQ, GSI_QPN, QpTypeCode, RdmaFeature, RdmaStatus } from './abi.js';
import { ipv4ToGid } from './bytes.js';
import type { CommandContext } from './control.js';
import { type QpKind, type QpObj, lowestFree } from './core.js';
import { DeviceError, invalidArg, notSupported } from './errors.js';
import { QP_ATTR_BYTES, readQpAttr, readQpCap, writeQpAttr, writeQpCap } from './structs.js';
import { checkAhAttr, checkQpAccess, checkReservedZero } from './validate.js';
import { WorkQueue } from './work-queue.js';

export function handleCreateQp({ core, req, resp }: CommandContext): void {
  const cfg = core.config;
  const typeCode = req.getUint8(4);
  const sigAll = req.getUint8(5);
  const flags = req.getUint32(44, true);
  const srqn = req.getUint32(40, true);
  const cap = readQpCap(req, 16);
  let kind: QpKind;
  if (typeCode === QpTypeCode.RC) kind = 'rc';
  else if (typeCode === QpTypeCode.UD || typeCode === QpTypeCode.GSI) kind = typeCode === QpTypeCode.UD ? 'ud' : 'gsi';
  else if (typeCode === QpTypeCode.SMI || typeCode === QpTypeCode.UC) throw notSupported(`qp_type ${typeCode}`);
  else throw invalidArg(`qp_type ${typeCode}`);
  if (kind !== 'rc' && !core.has(RdmaFeature.UD)) throw notSupported('UD and GSI QPs need VIRTIO_RDMA_F_UD');
  if (cap.maxInlineData > 0 && !core.has(RdmaFeature.INLINE)) throw notSupported('inline data needs VIRTIO_RDMA_F_INLINE');
  if (sigAll > 1) throw invalidArg(`sq_sig_all ${sigAll}`);
  checkReservedZero(req, 6, 8, 'CREATE_QP');
  checkReservedZero(req, 48, 56, 'CREATE_QP');
  if (cap.reserved !== 0) throw invalidArg('reserved qp_cap field is not zero');
  if ((flags & ~CREATE_QP_F_USE_SRQ) !== 0) throw invalidArg(`unknown flags 0x${flags.toString(16)}`);
  const useSrq = (flags & CREATE_QP_F_USE_SRQ) !== 0;
  if (useSrq && !core.has(RdmaFeature.SRQ)) throw notSupported('USE_SRQ needs VIRTIO_RDMA_F_SRQ');
  if (useSrq && (cap.maxRecvWr !== 0 || cap.maxRecvSge !== 0)) throw invalidArg('a QP with an SRQ has no receive capabilities');
  if (!useSrq && srqn !== 0) throw invalidArg('srqn without USE_SRQ');
  if (cap.maxSendWr > cfg.maxQpWr || cap.maxRecvWr > cfg.maxQpWr) throw invalidArg('max_send_wr / max_recv_wr above max_qp_wr');
  if (cap.maxSendSge > cfg.maxSendSge || cap.maxRecvSge > cfg.maxRecvSge) throw invalidArg('SGE count above the device limit');
  if (cap.maxInlineData > cfg.maxInlineData) throw invalidArg('max_inline_data above the device limit');
  const pd = core.pd(req.getUint32(0, true));
  const sendCq = core.cq(req.getUint32(8, true));
  const recvCq = core.cq(req.getUint32(12, true));
  const srq = useSrq ? core.srq(srqn) : null;
  if (srq !== null && srq.pd !== pd.handle) throw new DeviceError(RdmaStatus.BadHandle, `SRQ ${srqn} belongs to another PD`);
  if (kind === 'gsi' && core.qps.has(GSI_QPN)) throw new DeviceError(RdmaStatus.Exists, 'a GSI QP exists');
  const index = lowestFree(core.qpByIndex);
  if (index < 0) throw new DeviceError(RdmaStatus.NoResources, 'no free QP index');
  const verbsType = kind === 'rc' ? QpType.Rc : QpType.Ud;
  const granted = { maxSendWr: cap.maxSendWr, maxRecvWr: cap.maxRecvWr, maxSendSge: cap.maxSendSge, maxRecvSge: cap.maxRecvSge, maxInlineData: cap.maxInlineData };
  // The provider signals every send (sigAll): the device retires each chain on its completion
  // and writes a CQE only where the guest asked for one.
  const qpn = core.verbs.createQp({
    type: verbsType, pd: pd.verbsPd, sendCq: sendCq.verbsCq, recvCq: recvCq.verbsCq, srq: srq?.verbsSrq,
    cap: { ...granted, maxInlineBytes: cap.maxInlineData }, sigAll: true, qpn: kind === 'gsi' ? GSI_QPN : undefined,
  });
  const map = core.transport.map;
  const qp: QpObj = {
    qpn, index, kind, verbsType, pd: pd.handle, sendCq: sendCq.index, recvCq: recvCq.index, srq: srq?.handle ?? 0, cap: granted,
    sigAll: sigAll === 1, state: QpState.Reset, sgidIndex: -1, deviceSqe: false, drainNotify: false, qkey: 0, flushVendor: 12,
    sq: new WorkQueue(map.sq(index), true), rq: new WorkQueue(map.rq(index), true),
  };
  core.qps.set(qpn, qp);
  core.qpByIndex[index] = qp;
  sendCq.users.add(qpn);
  recvCq.users.add(qpn);
  // Buffers made available before the QP existed are now its WQEs (§5.4).
  core.transport.setPending(qp.sq.vq);
  core.transport.setPending(qp.rq.vq);
  resp.setUint32(0, qpn, true);
  resp.setUint32(4, index, true);
  writeQpCap(resp, 8, granted);
}

/** Spec mask bit -> verbs mask bit (§7.11; CAP and RATE_LIMIT are handled before). */
const MASK_TO_VERBS: [number, number][] = [
  [AttrMask.STATE, QpAttr.STATE], [AttrMask.CUR_STATE, QpAttr.CUR_STATE], [AttrMask.ACCESS_FLAGS, QpAttr.ACCESS_FLAGS],
  [AttrMask.QKEY, QpAttr.QKEY], [AttrMask.AV, QpAttr.AV], [AttrMask.PATH_MTU, QpAttr.PATH_MTU], [AttrMask.TIMEOUT, QpAttr.TIMEOUT],
  [AttrMask.RETRY_CNT, QpAttr.RETRY_CNT], [AttrMask.RNR_RETRY, QpAttr.RNR_RETRY], [AttrMask.RQ_PSN, QpAttr.RQ_PSN],
  [AttrMask.MAX_QP_RD_ATOMIC, QpAttr.MAX_QP_RD_ATOMIC], [AttrMask.MIN_RNR_TIMER, QpAttr.MIN_RNR_TIMER], [AttrMask.SQ_PSN, QpAttr.SQ_PSN],
  [AttrMask.MAX_DEST_RD_ATOMIC, QpAttr.MAX_DEST_RD_ATOMIC], [AttrMask.DEST_QPN, QpAttr.DEST_QPN], [AttrMask.PKEY_INDEX, QpAttr.PKEY_INDEX],
  [AttrMask.PORT, QpAttr.PORT], [AttrMask.EN_SQD_ASYNC_NOTIFY, QpAttr.EN_SQD_ASYNC_NOTIFY],
];

const PSN_LIMIT = 1 << 24;

export function handleModifyQp({ core, datapath, req }: CommandContext): void {
  const cfg = core.config;
  const mask = req.getUint32(4, true);
  const a = readQpAttr(req, 8);
  if ((mask & ~ATTR_MASK_KNOWN) !== 0) throw invalidArg(`unknown attr_mask bits 0x${(mask & ~ATTR_MASK_KNOWN).toString(16)}`);
  checkReservedZero(req, 8 + 14, 8 + 16, 'qp_attr');
  checkReservedZero(req, 8 + 104, 8 + QP_ATTR_BYTES, 'qp_attr');
  if (mask & AttrMask.CAP) throw notSupported('resizing a QP');
  if (mask & AttrMask.RATE_LIMIT && a.rateLimit !== 0) throw notSupported('rate limits');
  const has = (bit: number) => (mask & bit) !== 0;
  const range = (bit: number, value: number, max: number, what: string, min = 0) => {
    if (has(bit) && (value < min || value > max)) throw invalidArg(`${what} ${value} is not in ${min}..${max}`);
  };
  range(AttrMask.STATE, a.qpState, QpState.Err, 'qp_state');
  range(AttrMask.PATH_MTU, a.pathMtu, cfg.activeMtu, 'path_mtu', 1);
  range(AttrMask.MAX_QP_RD_ATOMIC, a.maxRdAtomic, cfg.maxQpInitRdAtom, 'max_rd_atomic');
  range(AttrMask.MAX_DEST_RD_ATOMIC, a.maxDestRdAtomic, cfg.maxQpRdAtom, 'max_dest_rd_atomic');
  range(AttrMask.MIN_RNR_TIMER, a.minRnrTimer, 31, 'min_rnr_timer');
  range(AttrMask.TIMEOUT, a.timeout, 31, 'timeout');
  range(AttrMask.RETRY_CNT, a.retryCnt, 7, 'retry_cnt');
  range(AttrMask.RNR_RETRY, a.rnrRetry, 7, 'rnr_retry');
  range(AttrMask.PKEY_INDEX, a.pkeyIndex, 0, 'pkey_index');
  range(AttrMask.PORT, a.portNum, 1, 'port_num', 1);
  range(AttrMask.EN_SQD_ASYNC_NOTIFY, a.enSqdAsyncNotify, 1, 'en_sqd_async_notify');
  range(AttrMask.RQ_PSN, a.rqPsn, PSN_LIMIT - 1, 'rq_psn');
  range(AttrMask.SQ_PSN, a.sqPsn, PSN_LIMIT - 1, 'sq_psn');
  range(AttrMask.DEST_QPN, a.destQpNum, PSN_LIMIT - 1, 'dest_qp_num');
  const access = has(AttrMask.ACCESS_FLAGS) ? checkQpAccess(core, a.qpAccessFlags) : 0;
  const av = has(AttrMask.AV) ? checkAhAttr(core, a.ahAttr) : undefined;
  const qp = core.qp(req.getUint32(0, true));
  const from = qp.state;
  const to: QpState = has(AttrMask.STATE) ? a.qpState : from;
  if (has(AttrMask.CUR_STATE)) {
    const asserted = a.curQpState;
    if (asserted !== QpState.Rts && asserted !== QpState.Sqd && asserted !== QpState.Sqe) throw invalidArg(`cur_qp_state ${asserted} cannot be asserted`);
    if (asserted !== from) throw invalidArg(`cur_qp_state ${asserted} is not the QP's state ${from}`);
  }
  let verbsMask = 0;
  for (const [spec, verbs] of MASK_TO_VERBS) if (mask & spec) verbsMask |= verbs;
  verbsMask |= QpAttr.STATE;
  const attrs: Partial<QpAttributes> = {
    qpState: to, curQpState: from, pathMtu: a.pathMtu as PathMtu, qkey: a.qkey >>> 0, rqPsn: a.rqPsn, sqPsn: a.sqPsn, destQpNum: a.destQpNum,
    qpAccessFlags: access, pkeyIndex: a.pkeyIndex, portNum: a.portNum, timeout: a.timeout, retryCnt: a.retryCnt, rnrRetry: a.rnrRetry,
    minRnrTimer: a.minRnrTimer, maxRdAtomic: a.maxRdAtomic, maxDestRdAtomic: a.maxDestRdAtomic, enSqdAsyncNotify: a.enSqdAsyncNotify === 1,
  };
  if (av !== undefined) attrs.ahAttr = av;
  // RFC drivers never send PKEY_INDEX / PORT: RESET -> INIT defaults them (§7.12).
  if (from === QpState.Reset && to === QpState.Init) {
    if (!has(AttrMask.PKEY_INDEX)) {
      verbsMask |= QpAttr.PKEY_INDEX;
      attrs.pkeyIndex = 0;
    }
    if (!has(AttrMask.PORT)) {
      verbsMask |= QpAttr.PORT;
      attrs.portNum = 1;
    }
  }
  const why = checkTransition(qp.verbsType, from, to, verbsMask);
  if (why !== null) throw invalidArg(why);
  if (qp.deviceSqe && from === QpState.Sqe && to === QpState.Rts) {
    // The provider never left RTS: an RTS -> RTS with the optional attributes.
    core.verbs.modifyQp(qp.qpn, { ...attrs, curQpState: QpState.Rts }, verbsMask & ~QpAttr.CUR_STATE);
  } else {
    core.verbs.modifyQp(qp.qpn, attrs, verbsMask);
  }
  qp.deviceSqe = false;
  if (av !== undefined) qp.sgidIndex = av.sgidIndex;
  if (has(AttrMask.QKEY)) qp.qkey = a.qkey >>> 0;
  if (to === QpState.Sqd) qp.drainNotify = has(AttrMask.EN_SQD_ASYNC_NOTIFY) && a.enSqdAsyncNotify === 1;
  datapath.stateChanged(qp, from, to);
}

export function handleQueryQp({ core, req, resp }: CommandContext): void {
  const qp = core.qp(req.getUint32(0, true));
  const q = core.verbs.queryQp(qp.qpn);
  // SUSPENDED is host-only (§9.2, §17): the guest sees the state it knows.
  const state = q.qpState === QpState.Suspended ? qp.state : qp.deviceSqe ? QpState.Sqe : q.qpState;
  // A provider may leave the path unset before INIT -> RTR.
  const av = q.ahAttr as AddressVector | undefined;
  let dgid: Uint8Array = new Uint8Array(16);
  try {
    if (av !== undefined && av.dgid !== '') dgid = ipv4ToGid(av.dgid);
  } catch {
    dgid = new Uint8Array(16);
  }
  writeQpAttr(resp, 0, {
    qpState: state, curQpState: state, pathMtu: q.pathMtu ?? 0, maxRdAtomic: q.maxRdAtomic ?? 0, maxDestRdAtomic: q.maxDestRdAtomic ?? 0,
    minRnrTimer: q.minRnrTimer ?? 0, timeout: q.timeout ?? 0, retryCnt: q.retryCnt ?? 0, rnrRetry: q.rnrRetry ?? 0, sqDraining: 0,
    pkeyIndex: q.pkeyIndex ?? 0, portNum: 1, enSqdAsyncNotify: q.enSqdAsyncNotify ? 1 : 0, qkey: q.qkey ?? 0, rqPsn: q.rqPsn ?? 0,
    sqPsn: q.sqPsn ?? 0, destQpNum: q.destQpNum ?? 0, qpAccessFlags: q.qpAccessFlags ?? 0, rateLimit: 0, cap: qp.cap,
    ahAttr: {
      dgid, flowLabel: av?.flowLabel ?? 0, sgidIndex: av?.sgidIndex ?? 0, hopLimit: av?.hopLimit ?? 0, trafficClass: av?.trafficClass ?? 0,
      dmac: new Uint8Array(6), sl: av?.sl ?? 0, portNum: 1, staticRate: 0, ahFlags: 0,
    },
  });
}

export function handleDestroyQp({ core, datapath, req }: CommandContext): void {
  const qp = core.qp(req.getUint32(0, true));
  core.verbs.destroyQp(qp.qpn);
  core.qps.delete(qp.qpn);
  core.qpByIndex[qp.index] = null;
  core.cqs[qp.sendCq]?.users.delete(qp.qpn);
  core.cqs[qp.recvCq]?.users.delete(qp.qpn);
  // Outstanding WQEs are discarded without completions; every buffer goes back (§7.14).
  datapath.returnAll(qp.sq);
  datapath.returnAll(qp.rq);
}
