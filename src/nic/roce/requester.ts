// The requester (IBTA vol. 1 9.7; rxe_req.c plays the same role): takes send WQEs in order,
// cuts each message into path-MTU packets, gives every packet the next 24-bit PSN, and sends
// within the outstanding window and the max_rd_atomic limit. After a NAK or a timeout the
// completer asks for a go-back-N: the requester rewinds to the oldest unacknowledged PSN and
// sends everything from there again, resuming the oldest WQE in the middle when that is where
// the PSN falls. A WQE that fails its local checks is marked for the completer, and the
// requester sends nothing after it.
import { QpState, QpType } from '../qp-state.js';
import { Access, SendFlags, WcStatus, WrOpcode } from '../types.js';
import { Opcode } from './opcodes.js';
import type { BuildFields } from './packet.js';
import { psnAdd, psnDistance } from './psn.js';
import type { MemoryPort, PacketPort, TransportQp } from './transport-qp.js';
import { type SendWqe, WqeState, isAtomic, isReadOrAtomic } from './wqe.js';

export enum ReqState {
  /** Go back to the oldest unacknowledged PSN. */
  Rewind,
  /** Find the WQE to work on. */
  GetWqe,
  /** max_rd_atomic and fences, before a WQE's first packet. */
  CheckLimits,
  /** Local checks and PSN assignment when a WQE starts. */
  Start,
  /** Build and send one packet. */
  SendPacket,
  Exit,
}

export const REQ_STATE_NAMES: Record<ReqState, string> = {
  [ReqState.Rewind]: 'REWIND',
  [ReqState.GetWqe]: 'GET_WQE',
  [ReqState.CheckLimits]: 'CHECK_LIMITS',
  [ReqState.Start]: 'START',
  [ReqState.SendPacket]: 'SEND_PACKET',
  [ReqState.Exit]: 'EXIT',
};

export interface RequesterConfig {
  /** Most PSNs outstanding (sent, not acknowledged) on an RC QP. */
  windowPsns: number;
  /** Packets sent in one run before yielding to the event loop. */
  budgetPackets: number;
  maxMsgBytes: number;
}

export interface RequesterIo {
  readonly memory: MemoryPort;
  readonly wire: PacketPort;
  /** Run the completer (it retires UD sends and reports errors). */
  readonly scheduleCompleter: () => void;
  readonly config: RequesterConfig;
  /** Count a transport event for statistics (go-back-Ns, PSNs resent). */
  readonly count?: (event: string, n?: number) => void;
}

/** The requester's driving loop for one QP: send what the window allows, then return. */
export function runRequester(qp: TransportQp, io: RequesterIo): void {
  let state = qp.req.needRetry ? ReqState.Rewind : ReqState.GetWqe;
  let wqe: SendWqe | undefined;
  let budget = io.config.budgetPackets;
  for (;;) {
    switch (state) {
      case ReqState.Rewind:
        io.count?.('go-back-N', 1);
        io.count?.('PSNs rewound', psnDistance(qp.comp.psn, qp.req.psn));
        rewind(qp);
        state = ReqState.GetWqe;
        break;

      case ReqState.GetWqe: {
        state = ReqState.Exit;
        if (qp.req.waitRnr || qp.req.needRetry) {
          if (qp.req.needRetry && !qp.req.waitRnr) state = ReqState.Rewind;
          break;
        }
        wqe = qp.sq.at(qp.req.next);
        if (wqe === undefined || wqe.state === WqeState.Error) break;
        // SQD drains: messages already started finish (a go-back-N sends them again from their
        // start: `checked` says they were started), new ones wait.
        const fresh = wqe.state === WqeState.Posted;
        if (qp.state !== QpState.Rts && !(qp.state === QpState.Sqd && wqe.checked)) break;
        state = fresh ? ReqState.CheckLimits : ReqState.SendPacket;
        break;
      }

      case ReqState.CheckLimits: {
        const w = wqe as SendWqe;
        state = ReqState.Start;
        if (qp.type !== QpType.Rc) break;
        const inFlight = readsAndAtomicsInFlight(qp);
        if (isReadOrAtomic(w.opcode) && inFlight >= Math.max(1, qp.attrs.maxRdAtomic)) state = ReqState.Exit;
        // A fenced WQE waits for every earlier READ and atomic.
        if ((w.flags & SendFlags.FENCE) !== 0 && inFlight > 0) state = ReqState.Exit;
        break;
      }

      case ReqState.Start: {
        const w = wqe as SendWqe;
        if (!w.checked) {
          const status = checkWqe(qp, io, w);
          if (status !== WcStatus.Success) {
            fail(qp, io, w, status);
            state = ReqState.Exit;
            break;
          }
          w.checked = true;
        }
        w.firstPsn = qp.req.psn;
        w.psnCount = psnCountOf(qp, w);
        w.nextPacket = 0;
        w.state = WqeState.Processing;
        state = ReqState.SendPacket;
        break;
      }

      case ReqState.SendPacket: {
        const w = wqe as SendWqe;
        state = ReqState.Exit;
        if (qp.type === QpType.Rc && psnDistance(qp.comp.psn, qp.req.psn) >= io.config.windowPsns) break;
        if (budget-- <= 0) {
          qp.hooks.scheduleRequester();
          break;
        }
        if (!sendPacket(qp, io, w)) {
          fail(qp, io, w, WcStatus.LocProtErr);
          break;
        }
        if (qp.type === QpType.Rc) qp.hooks.restartRetryTimer();
        if (w.nextPacket >= packetsOf(qp, w)) {
          qp.req.next++;
          if (qp.type === QpType.Ud) {
            w.state = WqeState.Done;
            io.scheduleCompleter();
          } else {
            w.state = WqeState.Pending;
          }
          state = ReqState.GetWqe;
        } else {
          state = ReqState.SendPacket;
        }
        break;
      }

      case ReqState.Exit:
        return;
    }
  }
}

/** Go-back-N: resend from the completer's PSN, resuming the oldest WQE where that PSN falls. */
function rewind(qp: TransportQp): void {
  qp.req.needRetry = false;
  qp.req.psn = qp.comp.psn;
  qp.req.next = 0;
  qp.req.noAckPackets = 0;
  for (let i = 0; i < qp.sq.length; i++) {
    const w = qp.sq.at(i) as SendWqe;
    if (w.state === WqeState.Posted || w.state === WqeState.Error) break;
    const done = psnDistance(w.firstPsn, qp.comp.psn);
    if (i === 0 && done > 0 && done < w.psnCount) {
      // Packets of a SEND or WRITE map one-to-one to PSNs; a READ resumes at its response index.
      w.nextPacket = done;
      w.state = WqeState.Processing;
    } else {
      w.nextPacket = 0;
      w.state = WqeState.Posted;
    }
  }
}

function readsAndAtomicsInFlight(qp: TransportQp): number {
  let n = 0;
  for (let i = 0; i < qp.req.next; i++) {
    const w = qp.sq.at(i);
    if (w !== undefined && isReadOrAtomic(w.opcode)) n++;
  }
  return n;
}

function fail(qp: TransportQp, io: RequesterIo, w: SendWqe, status: WcStatus): void {
  w.state = WqeState.Error;
  w.status = status;
  io.scheduleCompleter();
}

/** Local checks when a WQE starts: lengths and every SGE's key, PD, bounds, rights. */
function checkWqe(qp: TransportQp, io: RequesterIo, w: SendWqe): WcStatus {
  if (w.lengthBytes > io.config.maxMsgBytes) return WcStatus.LocLenErr;
  if (qp.type === QpType.Ud && w.lengthBytes > qp.attrs.pmtuBytes) return WcStatus.LocLenErr;
  if (isAtomic(w.opcode) && w.lengthBytes !== 8) return WcStatus.LocLenErr;
  if (w.inline !== null) return WcStatus.Success;
  // READ responses and atomic results are written into the local buffers.
  const access = isReadOrAtomic(w.opcode) ? Access.LOCAL_WRITE : 0;
  return io.memory.checkSges(qp.pd, w.sgList, access);
}

/** PSNs a message takes: one per packet, and a READ one per response packet (9.7.1). */
function psnCountOf(qp: TransportQp, w: SendWqe): number {
  if (isAtomic(w.opcode)) return 1;
  return Math.max(1, Math.ceil(w.lengthBytes / qp.attrs.pmtuBytes));
}

/** Packets the requester sends for a message: a READ is one request whatever its length. */
function packetsOf(qp: TransportQp, w: SendWqe): number {
  return isReadOrAtomic(w.opcode) ? 1 : w.psnCount;
}

const SEND_OPS: readonly Opcode[][] = [
  // [first, middle, last, only] per variant: plain, with immediate
  [Opcode.RcSendFirst, Opcode.RcSendMiddle, Opcode.RcSendLast, Opcode.RcSendOnly],
  [Opcode.RcSendFirst, Opcode.RcSendMiddle, Opcode.RcSendLastImm, Opcode.RcSendOnlyImm],
];
const WRITE_OPS: readonly Opcode[][] = [
  [Opcode.RcWriteFirst, Opcode.RcWriteMiddle, Opcode.RcWriteLast, Opcode.RcWriteOnly],
  [Opcode.RcWriteFirst, Opcode.RcWriteMiddle, Opcode.RcWriteLastImm, Opcode.RcWriteOnlyImm],
];

/** Build and send the WQE's next packet; false if its payload could not be gathered. */
function sendPacket(qp: TransportQp, io: RequesterIo, w: SendWqe): boolean {
  const pmtu = qp.attrs.pmtuBytes;
  const index = isReadOrAtomic(w.opcode) ? 0 : w.nextPacket;
  const psn = psnAdd(w.firstPsn, w.nextPacket);
  const f: BuildFields = { opcode: 0, dqpn: qp.attrs.destQpn, psn };
  let payloadBytes = 0;
  let offset = 0;
  let dstIp = qp.attrs.dstIp;

  if (qp.type === QpType.Ud) {
    const ud = w.ud!;
    f.opcode = w.opcode === WrOpcode.SendWithImm ? Opcode.UdSendOnlyImm : Opcode.UdSendOnly;
    f.dqpn = ud.remoteQpn;
    // A Q_Key with the high bit set means "use the QP's own" (controlled Q_Keys).
    f.deth = { qkey: ud.remoteQkey >= 0x80000000 ? qp.attrs.qkey : ud.remoteQkey, srcQp: qp.qpn };
    if (w.opcode === WrOpcode.SendWithImm) f.immDt = w.immData;
    f.solicited = (w.flags & SendFlags.SOLICITED) !== 0;
    f.psn = qp.req.psn;
    payloadBytes = w.lengthBytes;
    dstIp = ud.dstIp;
    qp.req.psn = psnAdd(qp.req.psn, 1);
  } else if (w.opcode === WrOpcode.RdmaRead) {
    // A resumed READ asks only for the rest, from the response it stopped at.
    const skip = Math.min(w.nextPacket * pmtu, w.lengthBytes);
    f.opcode = Opcode.RcReadRequest;
    f.reth = { va: w.remoteAddr + BigInt(skip), rkey: w.rkey, dmaLen: w.lengthBytes - skip };
    f.ackReq = true;
    qp.req.psn = psnAdd(w.firstPsn, w.psnCount);
  } else if (isAtomic(w.opcode)) {
    f.opcode = w.opcode === WrOpcode.AtomicCmpAndSwp ? Opcode.RcCompareSwap : Opcode.RcFetchAdd;
    const add = w.opcode === WrOpcode.AtomicFetchAndAdd;
    f.atomicEth = { va: w.remoteAddr, rkey: w.rkey, swapAdd: add ? w.compareAdd : w.swap, compare: add ? 0n : w.compareAdd };
    f.ackReq = true;
    qp.req.psn = psnAdd(w.firstPsn, 1);
  } else {
    const count = w.psnCount;
    const first = index === 0;
    const last = index === count - 1;
    const write = w.opcode === WrOpcode.RdmaWrite || w.opcode === WrOpcode.RdmaWriteWithImm;
    const imm = w.opcode === WrOpcode.SendWithImm || w.opcode === WrOpcode.RdmaWriteWithImm;
    const ops = (write ? WRITE_OPS : SEND_OPS)[imm ? 1 : 0];
    f.opcode = first && last ? ops[3] : first ? ops[0] : last ? ops[2] : ops[1];
    offset = index * pmtu;
    payloadBytes = Math.min(pmtu, w.lengthBytes - offset);
    if (write && first) f.reth = { va: w.remoteAddr, rkey: w.rkey, dmaLen: w.lengthBytes };
    if (imm && last) f.immDt = w.immData;
    if (last) f.solicited = (w.flags & SendFlags.SOLICITED) !== 0;
    // Ask for an ACK at the end of each message and every quarter window, so the window moves.
    qp.req.noAckPackets++;
    f.ackReq = last || qp.req.noAckPackets >= Math.max(1, io.config.windowPsns >> 2);
    qp.req.psn = psnAdd(psn, 1);
  }
  if (f.ackReq) qp.req.noAckPackets = 0;

  const fill =
    payloadBytes === 0
      ? null
      : w.inline !== null
        ? (buf: Uint8Array, off: number) => {
            buf.set(w.inline!.subarray(offset, offset + payloadBytes), off);
            return true;
          }
        : (buf: Uint8Array, off: number) => io.memory.gather(qp.pd, w.sgList, offset, buf, off, payloadBytes);
  if (!io.wire.transmit(dstIp, f, payloadBytes, fill)) return false;
  w.nextPacket = isReadOrAtomic(w.opcode) ? w.psnCount : w.nextPacket + 1;
  return true;
}
