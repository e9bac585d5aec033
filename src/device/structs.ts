// Codecs for the shared structs of docs/device-spec.md §7.1 and §7.11 (qp_cap, ah_attr, qp_attr)
// and §10.1 (sge). Plain decoding only: which values are valid is the command handlers' business,
// so the guest library (which encodes) and hostile tests can put anything in any field.
import { setU64, u64n } from './bytes.js';

export const QP_CAP_BYTES = 24;
export const AH_ATTR_BYTES = 40;
export const QP_ATTR_BYTES = 120;

export interface QpCap {
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineData: number;
}

export function readQpCap(v: DataView, off: number): QpCap & { reserved: number } {
  return {
    maxSendWr: v.getUint32(off, true),
    maxRecvWr: v.getUint32(off + 4, true),
    maxSendSge: v.getUint32(off + 8, true),
    maxRecvSge: v.getUint32(off + 12, true),
    maxInlineData: v.getUint32(off + 16, true),
    reserved: v.getUint32(off + 20, true),
  };
}

export function writeQpCap(v: DataView, off: number, c: QpCap): void {
  v.setUint32(off, c.maxSendWr, true);
  v.setUint32(off + 4, c.maxRecvWr, true);
  v.setUint32(off + 8, c.maxSendSge, true);
  v.setUint32(off + 12, c.maxRecvSge, true);
  v.setUint32(off + 16, c.maxInlineData, true);
  v.setUint32(off + 20, 0, true);
}

/** §7.1 ah_attr. `dgid` is 16 network-order bytes. */
export interface AhAttr {
  dgid: Uint8Array;
  flowLabel: number;
  sgidIndex: number;
  hopLimit: number;
  trafficClass: number;
  dmac: Uint8Array;
  sl: number;
  portNum: number;
  staticRate: number;
  ahFlags: number;
}

export function readAhAttr(v: DataView, off: number): AhAttr & { reservedZero: boolean } {
  const bytes = new Uint8Array(v.buffer, v.byteOffset + off, AH_ATTR_BYTES);
  let reservedZero = bytes[23] === 0;
  for (let i = 34; i < 40; i++) if (bytes[i] !== 0) reservedZero = false;
  return {
    dgid: bytes.slice(0, 16),
    flowLabel: v.getUint32(off + 16, true),
    sgidIndex: bytes[20],
    hopLimit: bytes[21],
    trafficClass: bytes[22],
    dmac: bytes.slice(24, 30),
    sl: bytes[30],
    portNum: bytes[31],
    staticRate: bytes[32],
    ahFlags: bytes[33],
    reservedZero,
  };
}

export function writeAhAttr(v: DataView, off: number, a: AhAttr): void {
  const bytes = new Uint8Array(v.buffer, v.byteOffset + off, AH_ATTR_BYTES);
  bytes.fill(0);
  bytes.set(a.dgid.subarray(0, 16), 0);
  v.setUint32(off + 16, a.flowLabel, true);
  bytes[20] = a.sgidIndex;
  bytes[21] = a.hopLimit;
  bytes[22] = a.trafficClass;
  bytes.set(a.dmac.subarray(0, 6), 24);
  bytes[30] = a.sl;
  bytes[31] = a.portNum;
  bytes[32] = a.staticRate;
  bytes[33] = a.ahFlags;
}

/** §7.11 qp_attr. */
export interface QpAttr {
  qpState: number;
  curQpState: number;
  pathMtu: number;
  maxRdAtomic: number;
  maxDestRdAtomic: number;
  minRnrTimer: number;
  timeout: number;
  retryCnt: number;
  rnrRetry: number;
  sqDraining: number;
  pkeyIndex: number;
  portNum: number;
  enSqdAsyncNotify: number;
  qkey: number;
  rqPsn: number;
  sqPsn: number;
  destQpNum: number;
  qpAccessFlags: number;
  rateLimit: number;
  cap: QpCap;
  ahAttr: AhAttr;
}

export function readQpAttr(v: DataView, off: number): QpAttr & { reservedZero: boolean; ahAttr: AhAttr & { reservedZero: boolean } } {
  const b = (i: number) => v.getUint8(off + i);
  const u32 = (i: number) => v.getUint32(off + i, true);
  const { reserved: capReserved, ...cap } = readQpCap(v, off + 40);
  const ah = readAhAttr(v, off + 64);
  let reservedZero = v.getUint16(off + 14, true) === 0 && capReserved === 0 && ah.reservedZero;
  for (let i = 104; i < 120; i++) if (b(i) !== 0) reservedZero = false;
  return {
    qpState: b(0), curQpState: b(1), pathMtu: b(2), maxRdAtomic: b(3), maxDestRdAtomic: b(4), minRnrTimer: b(5),
    timeout: b(6), retryCnt: b(7), rnrRetry: b(8), sqDraining: b(9), pkeyIndex: v.getUint16(off + 10, true),
    portNum: b(12), enSqdAsyncNotify: b(13), qkey: u32(16), rqPsn: u32(20), sqPsn: u32(24), destQpNum: u32(28),
    qpAccessFlags: u32(32), rateLimit: u32(36), cap, ahAttr: ah, reservedZero,
  };
}

export function writeQpAttr(v: DataView, off: number, a: QpAttr): void {
  new Uint8Array(v.buffer, v.byteOffset + off, QP_ATTR_BYTES).fill(0);
  const fields = [a.qpState, a.curQpState, a.pathMtu, a.maxRdAtomic, a.maxDestRdAtomic, a.minRnrTimer, a.timeout, a.retryCnt, a.rnrRetry, a.sqDraining];
  fields.forEach((value, i) => v.setUint8(off + i, value));
  v.setUint16(off + 10, a.pkeyIndex, true);
  v.setUint8(off + 12, a.portNum);
  v.setUint8(off + 13, a.enSqdAsyncNotify);
  v.setUint32(off + 16, a.qkey, true);
  v.setUint32(off + 20, a.rqPsn, true);
  v.setUint32(off + 24, a.sqPsn, true);
  v.setUint32(off + 28, a.destQpNum, true);
  v.setUint32(off + 32, a.qpAccessFlags, true);
  v.setUint32(off + 36, a.rateLimit, true);
  writeQpCap(v, off + 40, a.cap);
  writeAhAttr(v, off + 64, a.ahAttr);
}

/** §10.1 SGE. `addr` is -1 when it is 2^53 or more (no MR reaches there). */
export interface WireSge {
  addr: number;
  length: number;
  lkey: number;
}

export function readSge(v: DataView, off: number): WireSge {
  return { addr: u64n(v, off), length: v.getUint32(off + 8, true), lkey: v.getUint32(off + 12, true) };
}

export function writeSge(v: DataView, off: number, s: WireSge): void {
  setU64(v, off, s.addr);
  v.setUint32(off + 8, s.length, true);
  v.setUint32(off + 12, s.lkey, true);
}
