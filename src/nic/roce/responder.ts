// The responder (IBTA vol. 1 9.7; rxe_resp.c plays the same role): receives request
// packets for one QP, checks their PSN (expected, duplicate, out of sequence), opcode order,
// resources (a receive WQE, responder resources), lengths and R_Keys, executes them on guest
// memory, and answers: a coalesced ACK when asked, READ responses, atomic ACKs, or a NAK as
// IBTA classifies the error. Duplicates are not executed again except a READ, which is re-read,
// and an atomic, whose saved result is resent from the responder resources. UD packets take the
// short path: Q_Key check, a receive WQE or a silent drop, a GRH ahead of the payload.
import { QpState, QpType } from '../qp-state.js';
import { Access, WcFlags, WcOpcode, WcStatus } from '../types.js';
import * as H from './headers.js';
import { AETH_CREDITS_INVALID, AethType, NakCode, aethSyndrome } from './headers.js';
import { ipv4 } from './icrc.js';
import { Hdr, OpFlag, Opcode } from './opcodes.js';
import { type BuildFields, RocePacket } from './packet.js';
import { PSN_MASK, psnAdd, psnDiff, psnDistance } from './psn.js';
import type { MemoryPort, PacketPort, RemoteRegion, ResponderResource, TransportQp } from './transport-qp.js';

export enum RespState {
  CheckState,
  CheckPsn,
  Duplicate,
  CheckOpSeq,
  CheckAccess,
  CheckResource,
  CheckLength,
  CheckRkey,
  Execute,
  Complete,
  Acknowledge,
  NakSequence,
  NakRnr,
  /** Class C errors: NAK, complete any receive WQE in error, QP to ERR. */
  NakFatal,
  Drop,
  Ud,
  Exit,
}

export const RESP_STATE_NAMES: Record<RespState, string> = {
  [RespState.CheckState]: 'CHECK_STATE',
  [RespState.CheckPsn]: 'CHECK_PSN',
  [RespState.Duplicate]: 'DUPLICATE',
  [RespState.CheckOpSeq]: 'CHECK_OP_SEQ',
  [RespState.CheckAccess]: 'CHECK_ACCESS',
  [RespState.CheckResource]: 'CHECK_RESOURCE',
  [RespState.CheckLength]: 'CHECK_LENGTH',
  [RespState.CheckRkey]: 'CHECK_RKEY',
  [RespState.Execute]: 'EXECUTE',
  [RespState.Complete]: 'COMPLETE',
  [RespState.Acknowledge]: 'ACKNOWLEDGE',
  [RespState.NakSequence]: 'NAK_SEQUENCE',
  [RespState.NakRnr]: 'NAK_RNR',
  [RespState.NakFatal]: 'NAK_FATAL',
  [RespState.Drop]: 'DROP',
  [RespState.Ud]: 'UD',
  [RespState.Exit]: 'EXIT',
};

export interface ResponderIo {
  readonly memory: MemoryPort;
  readonly wire: PacketPort;
  readonly localIp: string;
  readonly maxMsgBytes: number;
  readonly dropped: (reason: string) => void;
  /** Counts transport events (sequence NAKs sent, duplicates) for statistics. */
  readonly count?: (event: string, n?: number) => void;
}

/** GRH bytes ahead of a UD payload in the receive buffer (as verbs present UD receives). */
export const GRH_BYTES = 40;

const RECEIVING = new Set([QpState.Rtr, QpState.Rts, QpState.Sqd, QpState.Sqe]);

/** Handle one request packet that arrived for `qp` from `fromIp`. */
export function respond(qp: TransportQp, io: ResponderIo, pkt: RocePacket, fromIp: string): void {
  const flags = pkt.info.flags;
  const psn = H.bthPsn(pkt);
  const pmtu = qp.attrs.pmtuBytes;
  const r = qp.resp;
  let state = RespState.CheckState;
  let nak = NakCode.InvalidRequest;
  let recvStatus = WcStatus.RemInvReqErr;
  let dropReason = '';
  let region: RemoteRegion | null = null;

  for (;;) {
    switch (state) {
      case RespState.CheckState:
        state = !RECEIVING.has(qp.state) ? RespState.Drop : qp.type === QpType.Ud ? RespState.Ud : RespState.CheckPsn;
        dropReason = 'QP not receiving';
        break;

      case RespState.CheckPsn: {
        const d = psnDiff(psn, r.psn);
        if (d === 0) {
          r.nakSent = false;
          state = RespState.CheckOpSeq;
        } else if (d < 0) {
          state = RespState.Duplicate;
          io.count?.('duplicate request');
        } else if (!r.nakSent && r.held === null) {
          // Out of sequence, first since the expected PSN: usually a packet overtaken by the
          // one we expect, which then arrives in the same batch. Hold a copy and decide at the
          // end of the turn (flushAck): executed in order once the gap fills, or a sequence NAK
          // if it does not. On the wire this is a NAK sent a moment later, or none needed; a
          // go-back-N of the whole window is saved for every such reordering.
          r.held = { pkt: copyPacket(pkt), fromIp };
          r.nakDue = true;
          io.count?.('out-of-order request held');
          qp.hooks.scheduleAck();
          state = RespState.Exit;
        } else {
          // Out of sequence: one NAK names the PSN we expect; the rest are dropped.
          state = r.nakSent ? RespState.Drop : RespState.NakSequence;
          dropReason = 'out of sequence';
        }
        break;
      }

      case RespState.CheckOpSeq: {
        // MIDDLE and LAST continue a FIRST or MIDDLE of the same kind; nothing else may
        // interrupt a message.
        const prev = r.lastOpcode;
        const inSend = prev === Opcode.RcSendFirst || prev === Opcode.RcSendMiddle;
        const inWrite = prev === Opcode.RcWriteFirst || prev === Opcode.RcWriteMiddle;
        const continues = (flags & (OpFlag.Middle | OpFlag.Last)) !== 0 && (flags & OpFlag.First) === 0;
        let ok: boolean;
        if (continues) ok = (flags & OpFlag.Send) !== 0 ? inSend : (flags & OpFlag.Write) !== 0 ? inWrite : false;
        else ok = !inSend && !inWrite;
        if ((flags & OpFlag.Invalidate) !== 0) ok = false; // no memory windows to invalidate
        state = ok ? RespState.CheckAccess : RespState.NakFatal;
        nak = NakCode.InvalidRequest;
        break;
      }

      case RespState.CheckAccess: {
        // The QP's own remote rights (11.2.4.2 access flags) come before any R_Key.
        const need = (flags & OpFlag.Write) !== 0 ? Access.REMOTE_WRITE : (flags & OpFlag.Read) !== 0 ? Access.REMOTE_READ : (flags & OpFlag.Atomic) !== 0 ? Access.REMOTE_ATOMIC : 0;
        state = (qp.attrs.accessFlags & need) === need ? RespState.CheckResource : RespState.NakFatal;
        nak = NakCode.RemoteAccessError;
        break;
      }

      case RespState.CheckResource: {
        state = RespState.CheckLength;
        if ((flags & OpFlag.RecvWqe) !== 0 && r.recv === null) {
          // A WRITE's receive WQE is taken only by the packet with the immediate.
          const needsWqe = (flags & OpFlag.Send) !== 0 ? (flags & OpFlag.First) !== 0 : (flags & OpFlag.Immediate) !== 0;
          if (needsWqe) {
            const wqe = qp.hooks.takeRecv();
            if (wqe === null) state = RespState.NakRnr;
            else {
              r.recv = wqe;
              r.recvOffset = 0;
            }
          }
        }
        if ((flags & (OpFlag.Read | OpFlag.Atomic)) !== 0 && qp.attrs.maxDestRdAtomic === 0) {
          state = RespState.NakFatal;
          nak = NakCode.InvalidRequest;
        }
        break;
      }

      case RespState.CheckLength: {
        state = RespState.CheckRkey;
        nak = NakCode.InvalidRequest;
        const n = pkt.payloadBytes;
        const first = (flags & OpFlag.First) !== 0;
        const last = (flags & OpFlag.Last) !== 0;
        // FIRST and MIDDLE packets are exactly one path MTU; LAST carries 1..MTU; ONLY 0..MTU.
        if ((flags & OpFlag.Payload) !== 0) {
          const bad = n > pmtu || (!last && n !== pmtu) || (last && !first && n === 0);
          if (bad) state = RespState.NakFatal;
        }
        if ((flags & OpFlag.Send) !== 0 && state !== RespState.NakFatal) {
          if (r.recv !== null && r.recvOffset + n > r.recv.lengthBytes) {
            state = RespState.NakFatal;
            recvStatus = WcStatus.LocLenErr;
          }
        }
        if ((flags & OpFlag.Write) !== 0 && state !== RespState.NakFatal) {
          if (first) {
            const dmaLen = H.rethDmaLen(pkt);
            if (dmaLen > io.maxMsgBytes || (last ? n !== dmaLen : dmaLen <= pmtu)) state = RespState.NakFatal;
          } else if (r.write === null || n > r.write.remaining || (last && n !== r.write.remaining)) {
            state = RespState.NakFatal;
          }
        }
        if ((flags & OpFlag.Read) !== 0 && H.rethDmaLen(pkt) > io.maxMsgBytes) state = RespState.NakFatal;
        if ((flags & OpFlag.Atomic) !== 0 && (H.atomicEthVa(pkt) & 7n) !== 0n) state = RespState.NakFatal;
        break;
      }

      case RespState.CheckRkey: {
        state = RespState.Execute;
        let rkey = 0;
        let va = 0n;
        let len = 0;
        let access = 0;
        if ((flags & OpFlag.Write) !== 0 && (flags & OpFlag.First) !== 0) {
          [rkey, va, len, access] = [H.rethRkey(pkt), H.rethVa(pkt), H.rethDmaLen(pkt), Access.REMOTE_WRITE];
        } else if ((flags & OpFlag.Read) !== 0) {
          [rkey, va, len, access] = [H.rethRkey(pkt), H.rethVa(pkt), H.rethDmaLen(pkt), Access.REMOTE_READ];
        } else if ((flags & OpFlag.Atomic) !== 0) {
          [rkey, va, len, access] = [H.atomicEthRkey(pkt), H.atomicEthVa(pkt), 8, Access.REMOTE_ATOMIC];
        } else break;
        // A zero-length RDMA operation touches no memory and checks no R_Key.
        if (len === 0) break;
        const found = io.memory.remote(qp.pd, rkey, va, len, access);
        if (typeof found === 'number') {
          nak = found;
          state = RespState.NakFatal;
        } else region = found;
        break;
      }

      case RespState.Execute: {
        state = RespState.Complete;
        const n = pkt.payloadBytes;
        if ((flags & OpFlag.Send) !== 0) {
          const recv = r.recv!;
          if (n > 0 && !io.memory.scatter(qp.pd, recv.sgList, r.recvOffset, pkt.bytes, pkt.payloadOff, n)) {
            // The receive buffer's key, PD, bounds or rights are wrong: local protection error
            // here, remote operational error for the requester.
            nak = NakCode.RemoteOperationalError;
            recvStatus = WcStatus.LocProtErr;
            state = RespState.NakFatal;
            break;
          }
          r.recvOffset += n;
        } else if ((flags & OpFlag.Write) !== 0) {
          if ((flags & OpFlag.First) !== 0) {
            const dmaLen = H.rethDmaLen(pkt);
            r.write = { region, va: H.rethVa(pkt), remaining: dmaLen, lenBytes: dmaLen };
          }
          const w = r.write!;
          if (n > 0 && (w.region === null || !io.memory.remoteWrite(w.region, w.va, pkt.bytes, pkt.payloadOff, n))) {
            nak = NakCode.RemoteAccessError;
            state = RespState.NakFatal;
            break;
          }
          w.va += BigInt(n);
          w.remaining -= n;
        } else if ((flags & OpFlag.Read) !== 0) {
          const len = H.rethDmaLen(pkt);
          const res: ResponderResource = {
            atomic: false, psn, psnCount: Math.max(1, Math.ceil(len / pmtu)), rkey: H.rethRkey(pkt), va: H.rethVa(pkt), lenBytes: len, orig: 0n,
          };
          remember(qp, res);
          sendPendingAck(qp, io);
          // The request takes one PSN per response packet; MSN counts it as done.
          r.psn = psnAdd(psn, res.psnCount);
          r.msn = (r.msn + 1) & PSN_MASK;
          r.lastOpcode = pkt.opcode;
          sendReadResponses(qp, io, res, region, 0);
          state = RespState.Exit;
          break;
        } else if ((flags & OpFlag.Atomic) !== 0) {
          const va = H.atomicEthVa(pkt);
          const add = pkt.opcode === Opcode.RcFetchAdd;
          const compareAdd = add ? H.atomicEthSwapAdd(pkt) : H.atomicEthCompare(pkt);
          const swap = H.atomicEthSwapAdd(pkt);
          qp.hooks.beforeAtomic?.(psn, { region: region!, va, rkey: H.atomicEthRkey(pkt), opcode: pkt.opcode, add, compareAdd, swap });
          const orig = io.memory.remoteAtomic(region!, va, add, compareAdd, swap);
          if (orig === null) {
            nak = NakCode.RemoteAccessError;
            state = RespState.NakFatal;
            break;
          }
          const res: ResponderResource = { atomic: true, psn, psnCount: 1, rkey: H.atomicEthRkey(pkt), va, lenBytes: 8, orig };
          remember(qp, res);
          // Responses leave in PSN order (9.7.5.1): an ACK owed for earlier requests goes first.
          sendPendingAck(qp, io);
          r.psn = psnAdd(psn, 1);
          r.msn = (r.msn + 1) & PSN_MASK;
          r.lastOpcode = pkt.opcode;
          sendAtomicAck(qp, io, res);
          state = RespState.Exit;
          break;
        }
        r.psn = psnAdd(psn, 1);
        r.lastOpcode = pkt.opcode;
        break;
      }

      case RespState.Complete: {
        state = RespState.Acknowledge;
        if ((flags & OpFlag.Last) === 0) break;
        r.msn = (r.msn + 1) & PSN_MASK;
        r.lastOpcode = -1;
        const write = r.write;
        r.write = null;
        if ((flags & OpFlag.Completes) === 0 || r.recv === null) break;
        const recv = r.recv;
        r.recv = null;
        const imm = (flags & OpFlag.Immediate) !== 0;
        const isWrite = (flags & OpFlag.Write) !== 0;
        qp.hooks.completeRecv({
          wrId: recv.wrId, status: WcStatus.Success, opcode: isWrite ? WcOpcode.RecvRdmaWithImm : WcOpcode.Recv,
          byteLen: isWrite ? (write?.lenBytes ?? 0) : r.recvOffset, immData: imm ? H.immDt(pkt) : 0,
          wcFlags: imm ? WcFlags.WITH_IMM : 0, srcQp: qp.attrs.destQpn, solicited: H.bthSolicited(pkt),
        });
        break;
      }

      case RespState.Acknowledge:
        if (H.bthAckReq(pkt)) {
          r.ackPending = true;
          r.ackPsn = psn;
          qp.hooks.scheduleAck();
        }
        state = RespState.Exit;
        break;

      case RespState.Duplicate:
        state = duplicate(qp, io, pkt, psn) ? RespState.Exit : RespState.Drop;
        dropReason = 'duplicate with no saved response';
        break;

      case RespState.NakSequence:
        io.count?.('sequence NAK sent');
        r.nakSent = true;
        sendPendingAck(qp, io);
        sendAck(qp, io, aethSyndrome(AethType.Nak, NakCode.PsnSequenceError), r.psn);
        state = RespState.Exit;
        break;

      case RespState.NakRnr:
        // Not executed: the requester resends this PSN after the timer we name.
        r.nakSent = true;
        sendPendingAck(qp, io);
        sendAck(qp, io, aethSyndrome(AethType.RnrNak, qp.attrs.minRnrTimer), psn);
        state = RespState.Exit;
        break;

      case RespState.NakFatal: {
        sendPendingAck(qp, io);
        sendAck(qp, io, aethSyndrome(AethType.Nak, nak), psn);
        const recv = r.recv;
        r.recv = null;
        if (recv !== null) {
          qp.hooks.completeRecv({ wrId: recv.wrId, status: recvStatus, opcode: WcOpcode.Recv, byteLen: 0, immData: 0, wcFlags: 0, srcQp: qp.attrs.destQpn });
        }
        qp.hooks.enterError();
        state = RespState.Exit;
        break;
      }

      case RespState.Ud:
        udReceive(qp, io, pkt, fromIp);
        state = RespState.Exit;
        break;

      case RespState.Drop:
        io.dropped(dropReason);
        state = RespState.Exit;
        break;

      case RespState.Exit: {
        // The gap before the held request closed: it is next (or a resent copy overtook it).
        const held = r.held;
        if (held === null) return;
        const d = psnDiff(H.bthPsn(held.pkt), r.psn);
        if (d > 0) return;
        r.held = null;
        if (d === 0) respond(qp, io, held.pkt, held.fromIp);
        return;
      }
    }
  }
}

/** Answer a duplicate request; false when there is nothing to answer with. */
function duplicate(qp: TransportQp, io: ResponderIo, pkt: RocePacket, psn: number): boolean {
  const flags = pkt.info.flags;
  const r = qp.resp;
  if ((flags & (OpFlag.Read | OpFlag.Atomic)) === 0) {
    // A resent SEND or WRITE was already placed: acknowledge all we have, execute nothing.
    r.ackPending = true;
    r.ackPsn = psnAdd(r.psn, -1);
    qp.hooks.scheduleAck();
    return true;
  }
  for (const res of r.resources) {
    if (psnDistance(res.psn, psn) >= res.psnCount) continue;
    if (res.atomic !== ((flags & OpFlag.Atomic) !== 0)) return false;
    sendPendingAck(qp, io);
    if (res.atomic) {
      if (res.psn !== psn) return false;
      sendAtomicAck(qp, io, res);
      return true;
    }
    // A READ is read again from where the resent request starts, within the saved one; the
    // memory must still grant it.
    const start = psnDistance(res.psn, psn);
    const skip = start * qp.attrs.pmtuBytes;
    let region: RemoteRegion | null = null;
    if (res.lenBytes - skip > 0) {
      const found = io.memory.remote(qp.pd, res.rkey, res.va + BigInt(skip), res.lenBytes - skip, Access.REMOTE_READ);
      if (typeof found === 'number') return false;
      region = found;
    }
    sendReadResponses(qp, io, res, region, start);
    return true;
  }
  return false;
}

function remember(qp: TransportQp, res: ResponderResource): void {
  const list = qp.resp.resources;
  while (list.length >= Math.max(1, qp.attrs.maxDestRdAtomic)) list.shift();
  list.push(res);
}

function sendReadResponses(qp: TransportQp, io: ResponderIo, res: ResponderResource, region: RemoteRegion | null, start: number): void {
  const pmtu = qp.attrs.pmtuBytes;
  const count = res.psnCount;
  const aeth = { syndrome: aethSyndrome(AethType.Ack, AETH_CREDITS_INVALID), msn: qp.resp.msn };
  for (let i = start; i < count; i++) {
    const first = i === start;
    const last = i === count - 1;
    const opcode = first && last ? Opcode.RcReadResponseOnly : first ? Opcode.RcReadResponseFirst : last ? Opcode.RcReadResponseLast : Opcode.RcReadResponseMiddle;
    const f: BuildFields = { opcode, dqpn: qp.attrs.destQpn, psn: psnAdd(res.psn, i) };
    if (opcode !== Opcode.RcReadResponseMiddle) f.aeth = aeth;
    const va = res.va + BigInt(i * pmtu);
    const n = Math.min(pmtu, res.lenBytes - i * pmtu);
    const fill = n === 0 ? null : (buf: Uint8Array, off: number) => region !== null && io.memory.remoteRead(region, va, buf, off, n);
    if (!io.wire.transmit(qp.attrs.dstIp, f, n, fill)) {
      // The MR went away mid-response: the requester times out and retries into an access error.
      io.dropped('READ source no longer readable');
      return;
    }
  }
}

function sendAtomicAck(qp: TransportQp, io: ResponderIo, res: ResponderResource): void {
  io.wire.transmit(qp.attrs.dstIp, {
    opcode: Opcode.RcAtomicAck, dqpn: qp.attrs.destQpn, psn: res.psn,
    aeth: { syndrome: aethSyndrome(AethType.Ack, AETH_CREDITS_INVALID), msn: qp.resp.msn }, atomicAckOrig: res.orig,
  }, 0, null);
}

/** Send an ACK or NAK (`syndrome`, 9.7.5.2.8) for `psn`, with the current MSN. */
export function sendAck(qp: TransportQp, io: Pick<ResponderIo, 'wire'>, syndrome: number, psn: number): void {
  io.wire.transmit(qp.attrs.dstIp, { opcode: Opcode.RcAck, dqpn: qp.attrs.destQpn, psn, aeth: { syndrome, msn: qp.resp.msn } }, 0, null);
}

/** Copy a packet out of the receive buffer, which is reused for the next one. */
function copyPacket(p: RocePacket): RocePacket {
  return new RocePacket(p.bytes.slice(p.off, p.off + p.lenBytes), 0, p.lenBytes, p.info, p.payloadBytes, p.padCount);
}

/**
 * End of a turn: send the coalesced ACK, if one is owed (one ACK covers every request up to its
 * PSN), then the sequence NAK for a held request whose gap is still open.
 */
export function flushAck(qp: TransportQp, io: Pick<ResponderIo, 'wire' | 'count'>): void {
  const r = qp.resp;
  sendPendingAck(qp, io);
  if (!r.nakDue) return;
  r.nakDue = false;
  if (r.nakSent || r.held === null || psnDiff(H.bthPsn(r.held.pkt), r.psn) <= 0) return;
  if (qp.type !== QpType.Rc || !RECEIVING.has(qp.state)) return;
  r.nakSent = true;
  io.count?.('sequence NAK sent');
  sendAck(qp, io, aethSyndrome(AethType.Nak, NakCode.PsnSequenceError), r.psn);
}

function sendPendingAck(qp: TransportQp, io: Pick<ResponderIo, 'wire'>): void {
  const r = qp.resp;
  if (!r.ackPending) return;
  r.ackPending = false;
  if (qp.type !== QpType.Rc || !RECEIVING.has(qp.state)) return;
  io.wire.transmit(qp.attrs.dstIp, {
    opcode: Opcode.RcAck, dqpn: qp.attrs.destQpn, psn: r.ackPsn,
    aeth: { syndrome: aethSyndrome(AethType.Ack, AETH_CREDITS_INVALID), msn: r.msn },
  }, 0, null);
}

/** UD receive: wrong Q_Key, no WQE or a WQE too small and the message is dropped. */
function udReceive(qp: TransportQp, io: ResponderIo, pkt: RocePacket, fromIp: string): void {
  if (pkt.info.transport !== 'UD' || pkt.info.offsets[Hdr.Deth] < 0) return io.dropped('not a UD opcode');
  if (H.dethQkey(pkt) !== qp.attrs.qkey) return io.dropped('Q_Key mismatch');
  const n = pkt.payloadBytes;
  if (n > qp.attrs.pmtuBytes) return io.dropped('UD message larger than the MTU');
  const wqe = qp.hooks.peekRecv();
  if (wqe === null) return io.dropped('no UD receive WQE');
  if (wqe.lengthBytes < GRH_BYTES + n) return io.dropped('UD receive WQE too small');
  qp.hooks.takeRecv();
  const grh = ipv4Grh(fromIp, io.localIp, pkt.lenBytes);
  const ok = io.memory.scatter(qp.pd, wqe.sgList, 0, grh, 0, GRH_BYTES) && (n === 0 || io.memory.scatter(qp.pd, wqe.sgList, GRH_BYTES, pkt.bytes, pkt.payloadOff, n));
  const imm = (pkt.info.flags & OpFlag.Immediate) !== 0;
  qp.hooks.completeRecv({
    wrId: wqe.wrId, status: ok ? WcStatus.Success : WcStatus.LocProtErr, opcode: WcOpcode.Recv, byteLen: ok ? GRH_BYTES + n : 0,
    immData: imm ? H.immDt(pkt) : 0, wcFlags: WcFlags.GRH | (imm ? WcFlags.WITH_IMM : 0), srcQp: H.dethSrcQp(pkt),
    solicited: H.bthSolicited(pkt),
  });
}

/**
 * The 40-byte GRH area of a RoCE v2 IPv4 packet as verbs present it: 20 bytes of zeros, then the
 * IPv4 header (as Linux providers place it), with TTL 64, DF and a valid header checksum;
 * `roceBytes` is the packet from BTH through ICRC.
 */
export function ipv4Grh(srcIp: string, dstIp: string, roceBytes: number): Uint8Array {
  const g = new Uint8Array(GRH_BYTES);
  const v = new DataView(g.buffer);
  const o = 20;
  const total = 20 + 8 + roceBytes;
  g[o] = 0x45;
  v.setUint16(o + 2, total);
  v.setUint16(o + 6, 0x4000);
  g[o + 8] = 64;
  g[o + 9] = 17;
  v.setUint32(o + 12, ipv4(srcIp));
  v.setUint32(o + 16, ipv4(dstIp));
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += v.getUint16(o + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(o + 10, ~sum & 0xffff);
  return g;
}
