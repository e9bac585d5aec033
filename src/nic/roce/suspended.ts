// A SUSPENDED QP (R6; docs/device-spec.md §9.3): the host has stopped it for migration. It sends
// nothing of its own, executes nothing and writes no memory, so its state can be saved at any
// moment; it only looks at what still reaches it. The request at the expected PSN is answered
// with an RNR NAK naming that PSN and the shortest RNR timer (policy 'rnr-nak'), every other one
// is dropped ('drop': all of them); nothing is executed and the expected PSN stays. An ACK or NAK is remembered as the PSN it
// acknowledges, to be applied at resume; READ responses and atomic ACKs are dropped (the requester
// asks again after resume) but acknowledge what precedes them like any response. On resume the
// responder sends one PSN-sequence-error NAK naming its expected PSN (IBTA 9.7.5.2.8 table 43),
// so a peer whose requests were lost while the QP was away (or its address moved) goes back to
// it at once instead of waiting for its local ACK timer.
import { QpState, QpType } from '../qp-state.js';
import * as H from './headers.js';
import { AethType, NakCode, aethSyndrome, aethTypeOf } from './headers.js';
import { BTH_BYTES, OpFlag, Opcode, opcodeInfo } from './opcodes.js';
import type { RocePacket } from './packet.js';
import { psnAdd, psnDiff } from './psn.js';
import { type ResponderIo, flushAck, sendAck } from './responder.js';
import type { TransportQp } from './transport-qp.js';

/**
 * The RNR timer a suspended responder names: code 1, 0.01 ms, the shortest of IBTA 9.7.5.2.8
 * table 45 (code 0 is the longest, 655 ms). The peer retries as soon as its timer granularity
 * allows, so the first retry after resume is not a long wait; each retry costs it one rnr_retry
 * unless that is 7 (forever).
 */
export const SUSPENDED_RNR_TIMER = 1;

export type SuspendPolicy = 'rnr-nak' | 'drop';

export type SuspendedIo = Pick<ResponderIo, 'wire' | 'count'>;

/** States a QP's receive side answers requests in: they get a NAK on resume. */
const RESPONDING = new Set([QpState.Rtr, QpState.Rts, QpState.Sqd]);

/**
 * Before entering SUSPENDED: send the ACK owed for requests already executed (their coalesced
 * ACK would otherwise wait for resume), and forget a request held ahead of the expected PSN (a
 * copy of a packet is not state worth saving; the peer sends it again).
 */
export function quiesceResponder(qp: TransportQp, io: SuspendedIo): void {
  flushAck(qp, io);
  if (qp.resp.held !== null) io.count?.('suspend: held request dropped');
  qp.resp.held = null;
  qp.resp.nakDue = false;
}

/**
 * Whether a packet for the suspended QP is a request it will drop unanswered, decided from the
 * BTH alone. The caller drops it before checking its ICRC, which is most of what a packet costs:
 * a peer told to wait by an RNR NAK resends its whole window each time the (short) timer runs out,
 * and a suspended QP must keep up with that cheaply. Dropping a corrupt packet unchecked loses
 * nothing: it would have been dropped too.
 */
export function dropsUnchecked(qp: TransportQp, io: SuspendedIo, bytes: Uint8Array): boolean {
  if (bytes.length < BTH_BYTES) return false;
  const info = opcodeInfo(H.bthOpcodeAt(bytes, 0));
  if (info === undefined || (info.flags & OpFlag.Request) === 0) return false;
  if (qp.type === QpType.Rc && !qp.suspendDrop && H.bthPsnAt(bytes, 0) === qp.resp.psn) return false;
  io.count?.('suspended: request dropped');
  return true;
}

/** A request arrived for the suspended QP (its ICRC checked). */
export function suspendedRequest(qp: TransportQp, io: SuspendedIo, pkt: RocePacket): void {
  if (qp.type !== QpType.Rc || qp.suspendDrop) {
    io.count?.('suspended: request dropped');
    return;
  }
  // A responder NAKs only the request at its expected PSN, naming that PSN (9.7.5.2.8): packets
  // of a connection arrive in order, so one NAK answers a burst at its first new packet. A
  // duplicate would need its saved response sent, which waits for resume like everything else.
  if (H.bthPsn(pkt) !== qp.resp.psn) {
    io.count?.('suspended: request dropped');
    return;
  }
  io.count?.('suspended: RNR NAK sent');
  sendAck(qp, io, aethSyndrome(AethType.RnrNak, SUSPENDED_RNR_TIMER), qp.resp.psn);
}

/** A response (ACK, NAK, READ response, atomic ACK) arrived for the suspended QP. */
export function suspendedResponse(qp: TransportQp, io: SuspendedIo, pkt: RocePacket): void {
  const psn = H.bthPsn(pkt);
  // The completer's rules (completer.ts CheckPsn, ImplicitAck): only PSNs sent and unanswered.
  if (qp.type !== QpType.Rc || qp.sq.length === 0 || psnDiff(psn, qp.comp.psn) < 0 || psnDiff(psn, qp.req.psn) >= 0) {
    io.count?.('suspended: stale response dropped');
    return;
  }
  const isAck = pkt.opcode === Opcode.RcAck;
  io.count?.(isAck ? 'suspended: ACK recorded' : 'suspended: response dropped');
  // A positive ACK covers its own PSN; every other response (a NAK of any kind, a READ response,
  // an atomic ACK) covers those before it.
  const covered = isAck && aethTypeOf(H.aethSyndromeOf(pkt)) === AethType.Ack ? psn : psnAdd(psn, -1);
  if (psnDiff(covered, qp.comp.psn) < 0) return;
  if (qp.suspendAckPsn < 0 || psnDiff(covered, qp.suspendAckPsn) > 0) qp.suspendAckPsn = covered;
}

/**
 * After leaving SUSPENDED for `qp.state`: tell an RC peer the PSN this QP expects with a
 * PSN-sequence-error NAK. A peer with requests outstanding from that PSN on resends them at once
 * (and takes the NAK as an ACK of what precedes it); a peer with nothing outstanding from there
 * on ignores it (completer.ts drops a PSN not sent; rxe_comp.c completes the WQEs before it, as
 * an ACK would, and drops it when no WQE waits).
 */
export function resumeResponder(qp: TransportQp, io: SuspendedIo): void {
  if (qp.type !== QpType.Rc || !RESPONDING.has(qp.state)) return;
  io.count?.('resume: sequence NAK sent');
  sendAck(qp, io, aethSyndrome(AethType.Nak, NakCode.PsnSequenceError), qp.resp.psn);
}
