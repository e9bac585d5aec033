// The completer (IBTA vol. 1 9.7; rxe_comp.c plays the same role): reads ACKs, NAKs,
// READ responses and atomic ACKs, and completes send WQEs strictly in order. An ACK for PSN p
// acknowledges every request up to p (responses are coalesced); a response or NAK for p
// implicitly acknowledges what came before it. A gap — a response beyond the next expected
// one, an ACK past an unanswered READ, a PSN sequence NAK, or the local ACK timer — starts a
// go-back-N from the oldest unacknowledged PSN, counted against retry_cnt; an RNR NAK waits its
// timer and counts against rnr_retry (7: forever). An error completes the oldest WQE with its
// status and moves the QP to ERR, which flushes the rest. Resuming a SUSPENDED QP (R6) applies
// what the peer acknowledged meanwhile, gives the retry budgets back and goes back to the oldest
// unacknowledged PSN, counting nothing against them.
import { QpType } from '../qp-state.js';
import { WcStatus, WrOpcode } from '../types.js';
import { AethType, NakCode, aethTypeOf, aethValueOf, atomicAckOrig } from './headers.js';
import * as H from './headers.js';
import { OpFlag, Opcode } from './opcodes.js';
import type { RocePacket } from './packet.js';
import { psnAdd, psnDiff, psnDistance } from './psn.js';
import { RNR_RETRY_INFINITE, rnrTimerUs } from './timers.js';
import type { Completion, MemoryPort, TransportQp } from './transport-qp.js';
import { type SendWqe, WqeState, isAtomic, isReadOrAtomic } from './wqe.js';
import { wcOpcodeOf } from '../types.js';

export enum CompState {
  /** Is the packet's PSN one we are waiting for? */
  CheckPsn,
  /** Acknowledge, implicitly, the SENDs and WRITEs before the packet's PSN. */
  ImplicitAck,
  Ack,
  ReadResponse,
  AtomicAck,
  RnrNak,
  Nak,
  /** Start a go-back-N (or give up with RETRY_EXC_ERR). */
  Retry,
  /** Complete finished WQEs at the head of the queue. */
  Retire,
  /** Complete the head WQE with its error status; the QP leaves RTS. */
  Error,
  /** R6: the QP left SUSPENDED; catch up and go back to the oldest unacknowledged PSN. */
  Resume,
  Exit,
}

export const COMP_STATE_NAMES: Record<CompState, string> = {
  [CompState.CheckPsn]: 'CHECK_PSN',
  [CompState.ImplicitAck]: 'IMPLICIT_ACK',
  [CompState.Ack]: 'ACK',
  [CompState.ReadResponse]: 'READ_RESPONSE',
  [CompState.AtomicAck]: 'ATOMIC_ACK',
  [CompState.RnrNak]: 'RNR_NAK',
  [CompState.Nak]: 'NAK',
  [CompState.Retry]: 'RETRY',
  [CompState.Retire]: 'RETIRE',
  [CompState.Error]: 'ERROR',
  [CompState.Resume]: 'RESUME',
  [CompState.Exit]: 'EXIT',
};

/** What woke the completer: a response packet, the local ACK timer, work to retire, or resume. */
export type CompInput = { kind: 'packet'; pkt: RocePacket } | { kind: 'timeout' } | { kind: 'retire' } | { kind: 'resume' };

export interface CompleterIo {
  readonly memory: MemoryPort;
  /** Counts responses dropped as stale or foreign, for tests and statistics. */
  readonly dropped: (reason: string) => void;
  /** Counts transport events (timeouts, NAKs, retries) for statistics. */
  readonly count?: (event: string, n?: number) => void;
}

const NAK_STATUS: Record<number, WcStatus> = {
  [NakCode.InvalidRequest]: WcStatus.RemInvReqErr,
  [NakCode.RemoteAccessError]: WcStatus.RemAccessErr,
  [NakCode.RemoteOperationalError]: WcStatus.RemOpErr,
  [NakCode.InvalidRdRequest]: WcStatus.RemInvReqErr,
};

export function runCompleter(qp: TransportQp, io: CompleterIo, input: CompInput): void {
  const pkt = input.kind === 'packet' ? input.pkt : null;
  const psn = pkt === null ? 0 : H.bthPsn(pkt);
  let state: CompState;
  let fromTimeout = false;
  if (input.kind === 'packet') state = CompState.CheckPsn;
  else if (input.kind === 'timeout') {
    fromTimeout = true;
    io.count?.('local ACK timeout');
    // Nothing outstanding, or waiting out an RNR NAK: the timer has nothing to say.
    state = psnDistance(qp.comp.psn, qp.req.psn) === 0 || qp.req.waitRnr ? CompState.Retire : CompState.Retry;
  } else if (input.kind === 'resume') state = CompState.Resume;
  else state = CompState.Retire;

  for (;;) {
    switch (state) {
      case CompState.CheckPsn: {
        // Only PSNs sent and not yet answered: [comp.psn, req.psn). Older is a duplicate,
        // newer was never sent (stale from before a reset, or forged).
        if (psnDiff(psn, qp.comp.psn) < 0 || psnDiff(psn, qp.req.psn) >= 0 || qp.sq.length === 0) {
          io.dropped(psnDiff(psn, qp.comp.psn) < 0 ? 'duplicate response' : 'response PSN outside the window');
          state = CompState.Exit;
          break;
        }
        state = CompState.ImplicitAck;
        break;
      }

      case CompState.ImplicitAck: {
        const p = pkt as RocePacket;
        const isPlainAck = p.opcode === Opcode.RcAck && aethTypeOf(H.aethSyndromeOf(p)) === AethType.Ack;
        // A positive ACK covers its own PSN; everything else covers what is before it.
        const covered = isPlainAck ? psn : psnAdd(psn, -1);
        if (psnDiff(covered, qp.comp.psn) >= 0) ackThrough(qp, covered);
        if (p.opcode === Opcode.RcAck) {
          const type = aethTypeOf(H.aethSyndromeOf(p));
          state = type === AethType.Ack ? CompState.Ack : type === AethType.RnrNak ? CompState.RnrNak : type === AethType.Nak ? CompState.Nak : CompState.Exit;
          if (state === CompState.Exit) io.dropped('reserved AETH type');
        } else if (p.opcode === Opcode.RcAtomicAck) state = CompState.AtomicAck;
        else if ((p.info.flags & OpFlag.Response) !== 0) state = CompState.ReadResponse;
        else state = CompState.Exit;
        break;
      }

      case CompState.Ack: {
        // After ackThrough, an ACK that reaches an unanswered READ or atomic means its response
        // was lost: responses come back in order.
        const head = qp.sq.at(0);
        state = CompState.Retire;
        if (head !== undefined && isReadOrAtomic(head.opcode) && sent(head) && psnDiff(psn, head.firstPsn) >= 0) state = CompState.Retry;
        break;
      }

      case CompState.ReadResponse: {
        const p = pkt as RocePacket;
        const head = qp.sq.at(0);
        state = CompState.Retire;
        if (head === undefined || head.opcode !== WrOpcode.RdmaRead || !sent(head) || !inMessage(head, psn)) {
          // A response to some other request: an earlier READ or atomic is still unanswered.
          state = head !== undefined && isReadOrAtomic(head.opcode) && sent(head) ? CompState.Retry : CompState.Exit;
          if (state === CompState.Exit) io.dropped('READ response matches no READ');
          break;
        }
        if (psn !== qp.comp.psn) {
          state = CompState.Retry;
          break;
        }
        const index = psnDistance(head.firstPsn, psn);
        const last = index === head.psnCount - 1;
        const pmtu = qp.attrs.pmtuBytes;
        const want = last ? head.lengthBytes - index * pmtu : pmtu;
        // The framing of a resumed READ starts again at FIRST, so only "last or not" and the
        // length are fixed by the PSN.
        const isLastOp = (p.info.flags & OpFlag.Last) !== 0;
        if (isLastOp !== last || p.payloadBytes !== want) {
          head.status = WcStatus.BadRespErr;
          state = CompState.Error;
          break;
        }
        if (want > 0 && !io.memory.scatter(qp.pd, head.sgList, index * pmtu, p.bytes, p.payloadOff, want)) {
          head.status = WcStatus.LocProtErr;
          state = CompState.Error;
          break;
        }
        advance(qp, psnAdd(psn, 1));
        if (last) finish(qp, head, WcStatus.Success);
        break;
      }

      case CompState.AtomicAck: {
        const p = pkt as RocePacket;
        const head = qp.sq.at(0);
        state = CompState.Retire;
        if (head === undefined || !isAtomic(head.opcode) || !sent(head) || head.firstPsn !== psn) {
          state = head !== undefined && isReadOrAtomic(head.opcode) && sent(head) ? CompState.Retry : CompState.Exit;
          if (state === CompState.Exit) io.dropped('atomic ACK matches no atomic');
          break;
        }
        const orig = new Uint8Array(8);
        new DataView(orig.buffer).setBigUint64(0, atomicAckOrig(p), true);
        if (!io.memory.scatter(qp.pd, head.sgList, 0, orig, 0, 8)) {
          head.status = WcStatus.LocProtErr;
          state = CompState.Error;
          break;
        }
        advance(qp, psnAdd(psn, 1));
        finish(qp, head, WcStatus.Success);
        break;
      }

      case CompState.RnrNak: {
        const p = pkt as RocePacket;
        state = CompState.Retire;
        const head = qp.sq.at(0);
        io.count?.('RNR NAK received');
        if (head === undefined || qp.req.waitRnr) break;
        if (qp.comp.rnrLeft === 0) {
          head.status = WcStatus.RnrRetryExcErr;
          state = CompState.Error;
          break;
        }
        if (qp.attrs.rnrRetry !== RNR_RETRY_INFINITE) qp.comp.rnrLeft--;
        qp.req.waitRnr = true;
        qp.hooks.stopRetryTimer();
        qp.hooks.startRnrTimer(rnrTimerUs(aethValueOf(H.aethSyndromeOf(p))));
        break;
      }

      case CompState.Nak: {
        const code = aethValueOf(H.aethSyndromeOf(pkt as RocePacket));
        const head = qp.sq.at(0);
        state = CompState.Retire;
        if (head === undefined) break;
        if (code === NakCode.PsnSequenceError) {
          io.count?.('sequence NAK received');
          state = CompState.Retry;
          break;
        }
        head.status = NAK_STATUS[code] ?? WcStatus.RemOpErr;
        state = CompState.Error;
        break;
      }

      case CompState.Retry: {
        state = CompState.Retire;
        const head = qp.sq.at(0);
        if (head === undefined || !sent(head)) break;
        // One go-back-N per gap: further NAKs for it wait until it makes progress or times out.
        if (qp.comp.retryStarted && !fromTimeout) break;
        if (qp.comp.retryLeft === 0) {
          io.count?.('retry count exceeded');
          head.status = WcStatus.RetryExcErr;
          state = CompState.Error;
          break;
        }
        qp.comp.retryLeft--;
        io.count?.(fromTimeout ? 'retry after timeout' : 'retry after NAK or gap');
        qp.comp.retryStarted = true;
        qp.req.needRetry = true;
        qp.hooks.restartRetryTimer();
        qp.hooks.scheduleRequester();
        break;
      }

      case CompState.Retire: {
        state = CompState.Exit;
        for (;;) {
          const head = qp.sq.at(0);
          if (head === undefined) break;
          if (head.state === WqeState.Done) {
            finish(qp, head, WcStatus.Success);
            continue;
          }
          if (head.state === WqeState.Error) state = CompState.Error;
          break;
        }
        if (psnDistance(qp.comp.psn, qp.req.psn) === 0 && !qp.req.needRetry) qp.hooks.stopRetryTimer();
        break;
      }

      case CompState.Resume: {
        state = CompState.Retire;
        const acked = qp.suspendAckPsn;
        qp.suspendAckPsn = -1;
        if (qp.type !== QpType.Rc) break;
        // What the peer acknowledged while the QP was suspended (suspended.ts checked the window).
        if (acked >= 0 && psnDiff(acked, qp.comp.psn) >= 0 && psnDiff(acked, qp.req.psn) < 0) ackThrough(qp, acked);
        // Time spent suspended uses up no retries: the budgets are whole again, as after
        // progress, and the go-back-N below is not counted against them.
        qp.comp.retryLeft = qp.attrs.retryCnt;
        qp.comp.rnrLeft = qp.attrs.rnrRetry;
        qp.comp.retryStarted = false;
        qp.req.waitRnr = false;
        if (psnDistance(qp.comp.psn, qp.req.psn) > 0 && qp.sq.length > 0) {
          // Responses sent to us while we were away (or to an address nobody held) are lost:
          // resend from the oldest unacknowledged PSN at once instead of waiting for the timer.
          io.count?.('go-back-N on resume');
          qp.req.needRetry = true;
          qp.hooks.restartRetryTimer();
        }
        qp.hooks.scheduleRequester();
        break;
      }

      case CompState.Error: {
        const head = qp.sq.shift() as SendWqe;
        qp.req.next = Math.max(0, qp.req.next - 1);
        qp.hooks.stopRetryTimer();
        qp.hooks.completeSend(completionOf(head, head.status));
        qp.hooks.enterError();
        state = CompState.Exit;
        break;
      }

      case CompState.Exit:
        return;
    }
  }
}

/** The WQE has had at least one packet sent. */
function sent(w: SendWqe): boolean {
  return w.state === WqeState.Processing || w.state === WqeState.Pending;
}

function inMessage(w: SendWqe, psn: number): boolean {
  return psnDistance(w.firstPsn, psn) < w.psnCount;
}

/**
 * Everything up to and including `psn` was received: complete the SENDs and WRITEs it covers
 * and move comp.psn past them. Stops at a READ or atomic, which only its response completes.
 */
function ackThrough(qp: TransportQp, psn: number): void {
  for (;;) {
    const head = qp.sq.at(0);
    if (head === undefined || !sent(head) || isReadOrAtomic(head.opcode)) return;
    if (psnDiff(psn, head.firstPsn) < 0) return;
    const lastPsn = psnAdd(head.firstPsn, head.psnCount - 1);
    // psn < req.psn, so a WQE whose last PSN it covers was wholly sent.
    if (psnDiff(psn, lastPsn) >= 0) {
      advance(qp, psnAdd(lastPsn, 1));
      finish(qp, head, WcStatus.Success);
      continue;
    }
    advance(qp, psnAdd(psn, 1));
    return;
  }
}

/** Progress: comp.psn moves forward, counters reset, the window opens. */
function advance(qp: TransportQp, psn: number): void {
  if (psnDiff(psn, qp.comp.psn) <= 0) return;
  qp.comp.psn = psn;
  qp.comp.retryLeft = qp.attrs.retryCnt;
  qp.comp.rnrLeft = qp.attrs.rnrRetry;
  qp.comp.retryStarted = false;
  if (psnDistance(qp.comp.psn, qp.req.psn) === 0) qp.hooks.stopRetryTimer();
  else qp.hooks.restartRetryTimer();
  qp.hooks.scheduleRequester();
}

function finish(qp: TransportQp, w: SendWqe, status: WcStatus): void {
  qp.sq.shift();
  qp.req.next = Math.max(0, qp.req.next - 1);
  if (w.signaled || status !== WcStatus.Success) qp.hooks.completeSend(completionOf(w, status));
}

function completionOf(w: SendWqe, status: WcStatus): Completion {
  return { wrId: w.wrId, status, opcode: wcOpcodeOf(w.opcode), byteLen: status === WcStatus.Success ? w.lengthBytes : 0, immData: 0, wcFlags: 0, srcQp: 0 };
}
