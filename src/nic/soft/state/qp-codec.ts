// The QP record (docs/state-format.md, "QP"): identity and capabilities, state and suspension,
// every attribute, the requester, completer and responder state (responder resources included,
// so READ and atomic duplicates are answered after the move as before it), and both work queues.
// New fields go at the end, after the receive queue.
import { QpState, QpType, canSuspend } from '../../qp-state.js';
import { OpFlag } from '../../roce/opcodes.js';
import { RocePacket, parsePacket } from '../../roce/packet.js';
import type { ResponderResource } from '../../roce/transport-qp.js';
import { PathMtu } from '../../types.js';
import type { QpAttributes } from '../../verbs.js';
import { type FieldReader, type FieldWriter, badRecord } from '../../../state/index.js';
import { MAX_LIST, MAX_PACKET_BYTES } from './records.js';
import type { SavedResponder, SavedSuspension, SoftQpState } from './types.js';
import {
  readAv, readIp, readPsn, readRecvWqe, readResource, readSendWqe, writeAv, writeIp, writeRecvWqe, writeResource, writeSendWqe,
} from './wqe-codec.js';

const NO_OPCODE = 0xffff;

export function writeQp(w: FieldWriter, q: SoftQpState): void {
  w.u32(q.qpn).u8(q.type).u32(q.pd).u32(q.sendCq).u32(q.recvCq).u32(q.srq);
  w.u32(q.cap.maxSendWr).u32(q.cap.maxRecvWr).u32(q.cap.maxSendSge).u32(q.cap.maxRecvSge).u32(q.cap.maxInlineBytes).bool(q.sigAll);
  w.u8(q.state).bool(q.suspension !== null);
  if (q.suspension !== null) w.u8(q.suspension.resumeState).bool(q.suspension.drop).i32(q.suspension.ackPsn);
  const a = q.attrs;
  w.u8(a.pathMtu).u32(a.qkey >>> 0).u32(a.rqPsn).u32(a.sqPsn).u32(a.destQpNum).u32(a.qpAccessFlags).u16(a.pkeyIndex).u8(a.portNum);
  w.u8(a.timeout).u8(a.retryCnt).u8(a.rnrRetry).u8(a.minRnrTimer).u8(a.maxRdAtomic).u8(a.maxDestRdAtomic);
  writeAv(w, a.ahAttr);
  w.bool(a.enSqdAsyncNotify);
  w.u32(q.req.psn).u32(q.req.next).bool(q.req.needRetry).bool(q.req.waitRnr).u32(q.req.noAckPackets);
  w.u32(q.comp.psn).u8(q.comp.retryLeft).u8(q.comp.rnrLeft).bool(q.comp.retryStarted);
  writeResponder(w, q.resp);
  w.list(q.sq, writeSendWqe);
  w.list(q.rq, writeRecvWqe);
}

function writeResponder(w: FieldWriter, r: SavedResponder): void {
  w.u32(r.psn).u32(r.msn).bool(r.nakSent).u16(r.lastOpcode < 0 ? NO_OPCODE : r.lastOpcode);
  w.bool(r.recv !== null);
  if (r.recv !== null) writeRecvWqe(w, r.recv);
  w.u64(r.recvOffset);
  w.bool(r.write !== null);
  if (r.write !== null) {
    w.bool(r.write.rkey !== null).u32(r.write.rkey ?? 0).u64(r.write.va).u64(r.write.remaining).u64(r.write.lenBytes);
  }
  w.list(r.resources, writeResource);
  w.bool(r.ackPending).u32(r.ackPsn);
  w.bool(r.held !== null);
  if (r.held !== null) {
    w.bytes(r.held.packet);
    writeIp(w, r.held.fromIp);
  }
  w.bool(r.nakDue);
}

export function readQp(r: FieldReader): SoftQpState {
  const qpn = r.range('QPN', r.u32('QPN'), 0, 0xffffff);
  const type = r.oneOf('QP type', r.u8('QP type'), [QpType.Rc, QpType.Ud]);
  const pd = r.u32('PD');
  const sendCq = r.u32('send CQ');
  const recvCq = r.u32('receive CQ');
  const srq = r.u32('SRQ');
  const cap = {
    maxSendWr: r.u32('max send WRs'), maxRecvWr: r.u32('max receive WRs'), maxSendSge: r.u32('max send SGEs'),
    maxRecvSge: r.u32('max receive SGEs'), maxInlineBytes: r.u32('max inline bytes'),
  };
  const sigAll = r.bool('sigAll');
  const state = r.range('QP state', r.u8('QP state'), QpState.Reset, QpState.Suspended) as QpState;
  let suspension: SavedSuspension | null = null;
  if (r.bool('suspended')) {
    const resumeState = r.u8('resume state') as QpState;
    if (!canSuspend(resumeState)) throw badRecord(`${r.where}: a QP cannot be suspended from state ${resumeState}`);
    const drop = r.bool('drop while suspended');
    const ackPsn = r.range('PSN acknowledged while suspended', r.i32('PSN acknowledged while suspended'), -1, 0xffffff);
    suspension = { resumeState, drop, ackPsn };
  }
  if ((state === QpState.Suspended) !== (suspension !== null)) throw badRecord(`${r.where}: suspension data must come with SUSPENDED and only with it`);
  const attrs: QpAttributes = {
    qpState: state, curQpState: state,
    pathMtu: r.range('path MTU', r.u8('path MTU'), PathMtu.Mtu256, PathMtu.Mtu4096) as PathMtu,
    qkey: r.u32('Q_Key'), rqPsn: readPsn(r, 'rq PSN'), sqPsn: readPsn(r, 'sq PSN'),
    destQpNum: r.range('destination QPN', r.u32('destination QPN'), 0, 0xffffff), qpAccessFlags: r.u32('access flags'),
    pkeyIndex: r.range('P_Key index', r.u16('P_Key index'), 0, 0), portNum: r.range('port', r.u8('port'), 1, 1),
    timeout: r.range('timeout', r.u8('timeout'), 0, 31), retryCnt: r.range('retry count', r.u8('retry count'), 0, 7),
    rnrRetry: r.range('RNR retry', r.u8('RNR retry'), 0, 7), minRnrTimer: r.range('min RNR timer', r.u8('min RNR timer'), 0, 31),
    maxRdAtomic: r.u8('max_rd_atomic'), maxDestRdAtomic: r.u8('max_dest_rd_atomic'), ahAttr: readAv(r), enSqdAsyncNotify: r.bool('SQD notify'),
  };
  const req = {
    psn: readPsn(r, 'requester PSN'), next: r.u32('next WQE'), needRetry: r.bool('need retry'), waitRnr: r.bool('wait RNR'),
    noAckPackets: r.u32('packets without ACK request'),
  };
  const comp = {
    psn: readPsn(r, 'completer PSN'), retryLeft: r.range('retries left', r.u8('retries left'), 0, 7),
    rnrLeft: r.range('RNR retries left', r.u8('RNR retries left'), 0, 7), retryStarted: r.bool('retry started'),
  };
  const resp = readResponder(r, type);
  const sq = r.list('send WQEs', MAX_LIST, 60, readSendWqe);
  const rq = r.list('receive WQEs', MAX_LIST, 12, readRecvWqe);
  if (req.next > sq.length) throw badRecord(`${r.where}: requester at WQE ${req.next} of ${sq.length}`);
  return { qpn, type, pd, sendCq, recvCq, srq, cap, sigAll, state, suspension, attrs, req, comp, resp, sq, rq };
}

function readResponder(r: FieldReader, type: QpType): SavedResponder {
  const psn = readPsn(r, 'responder PSN');
  const msn = readPsn(r, 'MSN');
  const nakSent = r.bool('NAK sent');
  const op = r.u16('last opcode');
  const lastOpcode = op === NO_OPCODE ? -1 : r.range('last opcode', op, 0, 0xff);
  const recv = r.bool('receiving') ? readRecvWqe(r) : null;
  const recvOffset = r.u64n('receive offset');
  if (recvOffset > (recv?.lengthBytes ?? 0)) throw badRecord(`${r.where}: receive offset ${recvOffset} past the WQE's ${recv?.lengthBytes ?? 0} bytes`);
  let write: SavedResponder['write'] = null;
  if (r.bool('writing')) {
    const hasKey = r.bool('write MR live');
    const rkey = r.u32('write rkey');
    const va = r.u64('write va');
    const remaining = r.u64n('write remaining');
    const lenBytes = r.range('write length', r.u64n('write length'), 0, 0xffffffff);
    if (remaining > lenBytes) throw badRecord(`${r.where}: ${remaining} bytes left of a ${lenBytes}-byte WRITE`);
    write = { rkey: hasKey ? rkey : null, va, remaining, lenBytes };
  }
  const resources: ResponderResource[] = r.list('responder resources', 256, 33, readResource);
  const ackPending = r.bool('ACK pending');
  const ackPsn = readPsn(r, 'ACK PSN');
  let held: SavedResponder['held'] = null;
  if (r.bool('holding')) {
    const packet = r.bytes('held packet', MAX_PACKET_BYTES);
    const fromIp = readIp(r, 'held packet source');
    const pkt = parsePacket(packet, 0, packet.length, null);
    if (!(pkt instanceof RocePacket) || (pkt.info.flags & OpFlag.Request) === 0 || pkt.info.transport !== (type === QpType.Rc ? 'RC' : 'UD')) {
      throw badRecord(`${r.where}: the held packet is not a request this QP could take`);
    }
    held = { packet, fromIp };
  }
  const nakDue = r.bool('NAK due');
  return { psn, msn, nakSent, lastOpcode, recv, recvOffset, write, resources, ackPending, ackPsn, held, nakDue };
}
