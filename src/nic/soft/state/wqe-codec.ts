// Encoding of the small structures several records share: scatter/gather lists, receive and send
// WQEs, work completions, address vectors and responder resources (docs/state-format.md,
// "Shared structures"). Decoders check what a value means by itself (enum values, 24-bit PSNs,
// lengths that must add up); what it means next to other objects is check.ts's business.
import { ipv4, ipv4Text } from '../../roce/icrc.js';
import { isPsn } from '../../roce/psn.js';
import type { ResponderResource } from '../../roce/transport-qp.js';
import { type RecvWqe, type SendWqe, WqeState } from '../../roce/wqe.js';
import { WcOpcode, WcStatus, WrOpcode } from '../../types.js';
import type { AddressVector, Sge, WorkCompletion } from '../../verbs.js';
import { type FieldReader, type FieldWriter, badRecord } from '../../../state/index.js';
import { MAX_INLINE_BYTES, MAX_SGES } from './records.js';

const numbers = (e: object): number[] => Object.values(e).filter((v): v is number => typeof v === 'number');
export const WC_STATUSES = numbers(WcStatus);
export const WC_OPCODES = numbers(WcOpcode);
export const WR_OPCODES = numbers(WrOpcode);
export const WQE_STATES = numbers(WqeState);

/** A 24-bit PSN field. */
export function readPsn(r: FieldReader, name: string): number {
  const v = r.u32(name);
  if (!isPsn(v)) throw badRecord(`${r.where}: ${name} ${v} is not a 24-bit PSN`);
  return v;
}

export function writeIp(w: FieldWriter, ip: string): void {
  w.u32(ipv4(ip));
}

export function readIp(r: FieldReader, name: string): string {
  return ipv4Text(r.u32(name));
}

// ---- scatter/gather lists and receive WQEs --------------------------------------------------

export function writeSges(w: FieldWriter, sges: readonly Sge[]): void {
  w.list(sges, (x, s) => x.u64(s.addr).u32(s.length).u32(s.lkey));
}

export function readSges(r: FieldReader): Sge[] {
  return r.list('SGEs', MAX_SGES, 16, (x) => ({ addr: x.u64n('SGE addr'), length: x.u32('SGE length'), lkey: x.u32('SGE lkey') }));
}

const sum = (sges: readonly Sge[]): number => sges.reduce((n, s) => n + s.length, 0);

export function writeRecvWqe(w: FieldWriter, wqe: RecvWqe): void {
  w.u64(wqe.wrId);
  writeSges(w, wqe.sgList);
}

export function readRecvWqe(r: FieldReader): RecvWqe {
  const wrId = r.u64('wrId');
  const sgList = readSges(r);
  return { wrId, sgList, lengthBytes: sum(sgList) };
}

// ---- send WQEs --------------------------------------------------------------------------------

export function writeSendWqe(w: FieldWriter, q: SendWqe): void {
  w.u64(q.wrId).u8(q.opcode).u32(q.flags);
  writeSges(w, q.sgList);
  w.bool(q.inline !== null);
  if (q.inline !== null) w.bytes(q.inline);
  w.u64(q.lengthBytes).u32(q.immData >>> 0).u64(q.remoteAddr).u32(q.rkey >>> 0).u64(q.compareAdd).u64(q.swap);
  w.bool(q.ud !== null);
  if (q.ud !== null) {
    writeIp(w, q.ud.dstIp);
    w.u32(q.ud.remoteQpn).u32(q.ud.remoteQkey >>> 0);
  }
  w.bool(q.signaled).u8(q.state).u8(q.status).u32(q.firstPsn).u32(q.psnCount).u32(q.nextPacket).bool(q.checked);
}

export function readSendWqe(r: FieldReader): SendWqe {
  const wrId = r.u64('wrId');
  const opcode = r.oneOf('opcode', r.u8('opcode'), WR_OPCODES) as WrOpcode;
  const flags = r.u32('flags');
  const sgList = readSges(r);
  const inline = r.bool('has inline') ? r.bytes('inline', MAX_INLINE_BYTES) : null;
  const lengthBytes = r.u64n('length');
  if (lengthBytes !== (inline !== null ? inline.length : sum(sgList))) {
    throw badRecord(`${r.where}: WQE length ${lengthBytes} is not its ${inline !== null ? 'inline bytes' : 'SGEs'}' length`);
  }
  const immData = r.u32('immData');
  const remoteAddr = r.u64('remote address');
  const rkey = r.u32('rkey');
  const compareAdd = r.u64('compareAdd');
  const swap = r.u64('swap');
  let ud: SendWqe['ud'] = null;
  if (r.bool('has UD destination')) {
    const dstIp = readIp(r, 'UD destination');
    const remoteQpn = r.range('remote QPN', r.u32('remote QPN'), 0, 0xffffff);
    ud = { dstIp, remoteQpn, remoteQkey: r.u32('remote Q_Key') };
  }
  const signaled = r.bool('signaled');
  const state = r.oneOf('WQE state', r.u8('WQE state'), WQE_STATES) as WqeState;
  const status = r.oneOf('WQE status', r.u8('WQE status'), WC_STATUSES) as WcStatus;
  const firstPsn = readPsn(r, 'first PSN');
  const psnCount = r.range('PSN count', r.u32('PSN count'), 0, 0x800000);
  const nextPacket = r.range('next packet', r.u32('next packet'), 0, psnCount);
  const checked = r.bool('checked');
  return { wrId, opcode, flags, sgList, inline, lengthBytes, immData, remoteAddr, rkey, compareAdd, swap, ud, signaled, state, status, firstPsn, psnCount, nextPacket, checked };
}

// ---- work completions -------------------------------------------------------------------------

export function writeWc(w: FieldWriter, wc: WorkCompletion): void {
  w.u64(wc.wrId).u8(wc.status).u8(wc.opcode).u32(wc.vendorErr >>> 0).u32(wc.byteLen >>> 0).u32(wc.immData >>> 0).u32(wc.qpNum >>> 0).u32(wc.srcQp >>> 0);
  w.u32(wc.wcFlags >>> 0).u16(wc.pkeyIndex).u16(wc.slid).u8(wc.sl).u8(wc.dlidPathBits);
  w.u8(wc.solicited === undefined ? 0 : wc.solicited ? 2 : 1);
}

export function readWc(r: FieldReader): WorkCompletion {
  const wc: WorkCompletion = {
    wrId: r.u64('wrId'),
    status: r.oneOf('status', r.u8('status'), WC_STATUSES) as WcStatus,
    opcode: r.oneOf('opcode', r.u8('opcode'), WC_OPCODES) as WcOpcode,
    vendorErr: r.u32('vendorErr'),
    byteLen: r.u32('byteLen'),
    immData: r.u32('immData'),
    qpNum: r.range('qpNum', r.u32('qpNum'), 0, 0xffffff),
    srcQp: r.range('srcQp', r.u32('srcQp'), 0, 0xffffff),
    wcFlags: r.u32('wcFlags'),
    pkeyIndex: r.u16('pkeyIndex'),
    slid: r.u16('slid'),
    sl: r.u8('sl'),
    dlidPathBits: r.u8('dlidPathBits'),
  };
  const solicited = r.range('solicited', r.u8('solicited'), 0, 2);
  if (solicited !== 0) wc.solicited = solicited === 2;
  return wc;
}

// ---- address vectors and responder resources --------------------------------------------------

export function writeAv(w: FieldWriter, av: AddressVector): void {
  writeIp(w, av.dgid);
  w.u32(av.sgidIndex).u8(av.hopLimit).u8(av.trafficClass).u32(av.flowLabel).u8(av.sl);
}

export function readAv(r: FieldReader): AddressVector {
  return {
    dgid: readIp(r, 'dgid'),
    sgidIndex: r.range('sgid index', r.u32('sgid index'), 0, 0xffff),
    hopLimit: r.u8('hop limit'),
    trafficClass: r.u8('traffic class'),
    flowLabel: r.range('flow label', r.u32('flow label'), 0, 0xfffff),
    sl: r.range('service level', r.u8('service level'), 0, 15),
  };
}

export function writeResource(w: FieldWriter, res: ResponderResource): void {
  w.bool(res.atomic).u32(res.psn).u32(res.psnCount).u32(res.rkey >>> 0).u64(res.va).u32(res.lenBytes).u64(res.orig);
}

export function readResource(r: FieldReader): ResponderResource {
  const atomic = r.bool('atomic');
  const psn = readPsn(r, 'resource PSN');
  const psnCount = r.range('resource PSN count', r.u32('resource PSN count'), 1, 0x800000);
  const rkey = r.u32('resource rkey');
  const va = r.u64('resource va');
  const lenBytes = r.u32('resource length');
  const orig = r.u64('atomic original');
  if (atomic && (psnCount !== 1 || lenBytes !== 8)) throw badRecord(`${r.where}: an atomic resource takes 1 PSN and 8 bytes`);
  return { atomic, psn, psnCount, rkey, va, lenBytes, orig };
}
