// Checking and applying modify-QP attributes. checkTransition (qp-state.ts) decides which
// attributes a transition needs and allows; this file checks their values against the device
// (limits, port MTU, GID table) and copies them into the QP's attribute record.
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import { QpAttr, QpState, QpType } from '../qp-state.js';
import { ipv4 } from '../roce/icrc.js';
import { isPsn } from '../roce/psn.js';
import type { TransportAttrs } from '../roce/transport-qp.js';
import { Access, PathMtu, mtuBytes } from '../types.js';
import type { AddressVector, DeviceLimits, QpAttributes } from '../verbs.js';
import type { GidTable } from './gid-table.js';

export interface AttrContext {
  readonly limits: DeviceLimits;
  readonly portMtu: PathMtu;
  readonly gids: GidTable;
  readonly localIp: string;
}

const REMOTE_RIGHTS = Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC | Access.LOCAL_WRITE;

function uint(name: string, value: unknown, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw invalid(`${name} ${String(value)} outside [0, ${max}]`);
}

/** Check an address vector: an IPv4 destination, and a source GID that is this link's address. */
export function checkAv(av: AddressVector | undefined, ctx: AttrContext): void {
  if (typeof av !== 'object' || av === null) throw invalid('address vector missing');
  try {
    ipv4(av.dgid);
  } catch {
    throw invalid(`dgid ${String(av.dgid)} is not an IPv4 address`);
  }
  const sgid = ctx.gids.get(av.sgidIndex);
  if (sgid === undefined) throw invalid(`sgid index ${av.sgidIndex} names no GID`);
  if (sgid !== ctx.localIp) throw invalid(`sgid ${sgid} is not this function's address ${ctx.localIp}`);
  uint('hop limit', av.hopLimit, 255);
  uint('traffic class', av.trafficClass, 255);
  uint('flow label', av.flowLabel, 0xfffff);
  uint('service level', av.sl, 15);
}

/** Check the values of every attribute named in `mask`. */
export function checkAttrs(a: Partial<QpAttributes>, mask: number, ctx: AttrContext): void {
  const has = (bit: number): boolean => (mask & bit) !== 0;
  if (has(QpAttr.ALT_PATH) || has(QpAttr.PATH_MIG_STATE)) throw new VerbsError(VerbsErrorCode.NotSupported, 'alternate paths (APM) are not supported');
  if (has(QpAttr.STATE) && !(a.qpState !== undefined && a.qpState in QpState)) throw invalid(`qp state ${String(a.qpState)} unknown`);
  if (has(QpAttr.PATH_MTU)) {
    if (!(typeof a.pathMtu === 'number' && a.pathMtu >= PathMtu.Mtu256 && a.pathMtu <= PathMtu.Mtu4096 && Number.isInteger(a.pathMtu))) throw invalid(`path MTU ${String(a.pathMtu)} unknown`);
    if (a.pathMtu > ctx.portMtu) throw invalid(`path MTU ${mtuBytes(a.pathMtu)} exceeds the port's ${mtuBytes(ctx.portMtu)}`);
  }
  if (has(QpAttr.QKEY)) uint('Q_Key', a.qkey, 0xffffffff);
  if (has(QpAttr.RQ_PSN) && !isPsn(a.rqPsn as number)) throw invalid(`rq PSN ${String(a.rqPsn)} is not 24-bit`);
  if (has(QpAttr.SQ_PSN) && !isPsn(a.sqPsn as number)) throw invalid(`sq PSN ${String(a.sqPsn)} is not 24-bit`);
  if (has(QpAttr.DEST_QPN)) uint('destination QPN', a.destQpNum, 0xffffff);
  if (has(QpAttr.ACCESS_FLAGS)) {
    uint('access flags', a.qpAccessFlags, 0xffff);
    if (((a.qpAccessFlags as number) & ~REMOTE_RIGHTS) !== 0) throw invalid(`QP access flags 0x${(a.qpAccessFlags as number).toString(16)} unknown`);
  }
  if (has(QpAttr.PKEY_INDEX) && a.pkeyIndex !== 0) throw invalid('the P_Key table has one entry, index 0');
  if (has(QpAttr.PORT) && a.portNum !== 1) throw invalid('the device has one port, number 1');
  if (has(QpAttr.TIMEOUT)) uint('timeout', a.timeout, 31);
  if (has(QpAttr.RETRY_CNT)) uint('retry count', a.retryCnt, 7);
  if (has(QpAttr.RNR_RETRY)) uint('RNR retry', a.rnrRetry, 7);
  if (has(QpAttr.MIN_RNR_TIMER)) uint('min RNR timer', a.minRnrTimer, 31);
  if (has(QpAttr.MAX_QP_RD_ATOMIC)) uint('max_rd_atomic', a.maxRdAtomic, ctx.limits.maxQpInitRdAtom);
  if (has(QpAttr.MAX_DEST_RD_ATOMIC)) uint('max_dest_rd_atomic', a.maxDestRdAtomic, ctx.limits.maxQpRdAtom);
  if (has(QpAttr.AV)) checkAv(a.ahAttr, ctx);
  if (has(QpAttr.EN_SQD_ASYNC_NOTIFY) && typeof a.enSqdAsyncNotify !== 'boolean') throw invalid('enSqdAsyncNotify must be a boolean');
}

/** Copy the attributes named in `mask` into the QP's record and its transport attributes. */
export function applyAttrs(rec: QpAttributes, t: TransportAttrs, a: Partial<QpAttributes>, mask: number, type: QpType): void {
  const has = (bit: number): boolean => (mask & bit) !== 0;
  if (has(QpAttr.PATH_MTU)) {
    rec.pathMtu = a.pathMtu as PathMtu;
    if (type === QpType.Rc) t.pmtuBytes = mtuBytes(rec.pathMtu);
  }
  if (has(QpAttr.QKEY)) rec.qkey = t.qkey = a.qkey as number;
  if (has(QpAttr.RQ_PSN)) rec.rqPsn = a.rqPsn as number;
  if (has(QpAttr.SQ_PSN)) rec.sqPsn = a.sqPsn as number;
  if (has(QpAttr.DEST_QPN)) rec.destQpNum = t.destQpn = a.destQpNum as number;
  if (has(QpAttr.ACCESS_FLAGS)) rec.qpAccessFlags = t.accessFlags = a.qpAccessFlags as number;
  if (has(QpAttr.PKEY_INDEX)) rec.pkeyIndex = 0;
  if (has(QpAttr.PORT)) rec.portNum = 1;
  if (has(QpAttr.TIMEOUT)) rec.timeout = t.timeout = a.timeout as number;
  if (has(QpAttr.RETRY_CNT)) rec.retryCnt = t.retryCnt = a.retryCnt as number;
  if (has(QpAttr.RNR_RETRY)) rec.rnrRetry = t.rnrRetry = a.rnrRetry as number;
  if (has(QpAttr.MIN_RNR_TIMER)) rec.minRnrTimer = t.minRnrTimer = a.minRnrTimer as number;
  if (has(QpAttr.MAX_QP_RD_ATOMIC)) rec.maxRdAtomic = t.maxRdAtomic = a.maxRdAtomic as number;
  if (has(QpAttr.MAX_DEST_RD_ATOMIC)) rec.maxDestRdAtomic = t.maxDestRdAtomic = a.maxDestRdAtomic as number;
  if (has(QpAttr.AV)) {
    rec.ahAttr = { ...(a.ahAttr as AddressVector) };
    t.dstIp = rec.ahAttr.dgid;
  }
  if (has(QpAttr.EN_SQD_ASYNC_NOTIFY)) rec.enSqdAsyncNotify = a.enSqdAsyncNotify as boolean;
}

/** The attribute record of a new QP in RESET. */
export function initialAttrs(type: QpType, portMtu: PathMtu): QpAttributes {
  return {
    qpState: QpState.Reset, curQpState: QpState.Reset, pathMtu: type === QpType.Ud ? portMtu : PathMtu.Mtu1024, qkey: 0, rqPsn: 0, sqPsn: 0,
    destQpNum: 0, qpAccessFlags: 0, pkeyIndex: 0, portNum: 1, timeout: 14, retryCnt: 7, rnrRetry: 7, minRnrTimer: 0,
    maxRdAtomic: 1, maxDestRdAtomic: 1,
    ahAttr: { dgid: '0.0.0.0', sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 }, enSqdAsyncNotify: false,
  };
}

export function transportAttrsOf(rec: QpAttributes): TransportAttrs {
  return {
    pmtuBytes: mtuBytes(rec.pathMtu), destQpn: rec.destQpNum, dstIp: rec.ahAttr.dgid, qkey: rec.qkey, timeout: rec.timeout,
    retryCnt: rec.retryCnt, rnrRetry: rec.rnrRetry, minRnrTimer: rec.minRnrTimer, maxRdAtomic: rec.maxRdAtomic,
    maxDestRdAtomic: rec.maxDestRdAtomic, accessFlags: rec.qpAccessFlags,
  };
}
