// A SoftRoce queue pair: the verbs-level object around the transport's TransportQp. It owns the
// receive queue, the attribute record, the modify-QP state machine (checkTransition plus the
// effects of each state), suspend and resume for migration (R6), flushing, the two transport
// timers, and the scheduling of the roles: each runs later in the event loop, coalesced, never
// inside the caller that asked for it, and none runs while the QP is SUSPENDED.
import { Fifo } from '../../util/fifo.js';
import { invalid } from '../errors.js';
import { QP_STATE_NAMES, QpAttr, QpState, QpType, canSuspend, checkTransition } from '../qp-state.js';
import { type CompleterIo, runCompleter } from '../roce/completer.js';
import { type RequesterConfig, type RequesterIo, runRequester } from '../roce/requester.js';
import { type ResponderIo, flushAck } from '../roce/responder.js';
import { type SuspendPolicy, quiesceResponder, resumeResponder } from '../roce/suspended.js';
import { retryIntervalUs } from '../roce/timers.js';
import { type AtomicOp, type Completion, type MemoryPort, type PacketPort, type QpHooks, TransportQp } from '../roce/transport-qp.js';
import { type RecvWqe, type SendWqe } from '../roce/wqe.js';
import { wcOpcodeOf } from '../types.js';
import { WcOpcode, WcStatus } from '../types.js';
import type { CreateQpOptions, QpAttributes, WorkCompletion } from '../verbs.js';
import type { SoftCq } from './cq.js';
import type { InputDrain } from './input-drain.js';
import { type AttrContext, applyAttrs, checkAttrs, initialAttrs, transportAttrsOf } from './qp-attrs.js';
import type { RunClock } from './run-clock.js';
import type { SoftSrq } from './srq.js';

/** What a QP needs from its device. */
export interface QpEnv {
  readonly memory: MemoryPort;
  readonly wire: PacketPort;
  readonly requesterConfig: RequesterConfig;
  readonly completerIo: CompleterIo;
  readonly responderIo: ResponderIo;
  readonly attrContext: AttrContext;
  /** Count a transport event (SoftRoceCounters.events). */
  readonly count: (event: string, n?: number) => void;
  /** An atomic is about to run (SoftRoceOptions.beforeAtomic, with its target resolved). */
  readonly beforeAtomic?: (qpn: number, psn: number, op: AtomicOp) => void;
  /** Queue a completion and tell whoever listens; false when the CQ overran. */
  deliver(cq: SoftCq, wc: WorkCompletion, solicited: boolean): boolean;
  /** Run transport work, containing anything it throws (it must never reach the event loop). */
  guard(qp: SoftQp, what: string, fn: () => void): void;
  /** Device time for the local ACK timer: stalls of the event loop do not count (run-clock.ts). */
  readonly clock: RunClock;
  /** Where an expired ACK timer waits for the device to read its input (input-drain.ts). */
  readonly drain: InputDrain;
  /** Ceiling of the retransmission backoff (timers.ts retryIntervalUs). */
  readonly retryBackoffCeilingMs: number;
}

export class SoftQp {
  readonly t: TransportQp;
  readonly rec: QpAttributes;
  readonly rq = new Fifo<RecvWqe>(64);
  readonly requesterIo: RequesterIo;
  destroyed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** When the local ACK timer expires, in device time (env.clock). */
  private retryDeadlineMs = 0;
  /** The timer runs: a setTimeout or a verdict waiting for the input to drain; holds the clock. */
  private retryArmed = false;
  /** Bumped by every stop, so a verdict already waiting knows it is stale. */
  private retryGeneration = 0;
  /** Local ACK timeouts in a row with comp.psn standing at `backoffPsn`: the backoff exponent. */
  private timeoutsInRow = 0;
  private backoffPsn = -1;
  private rnrTimer: NodeJS.Timeout | null = null;
  private requesterQueued = false;
  private retireQueued = false;
  private ackQueued = false;

  constructor(
    readonly qpn: number,
    readonly options: CreateQpOptions,
    readonly sendCq: SoftCq,
    readonly recvCq: SoftCq,
    readonly srq: SoftSrq | null,
    private readonly env: QpEnv,
  ) {
    this.rec = initialAttrs(options.type, env.attrContext.portMtu);
    const hooks: QpHooks = {
      completeSend: (c) => this.complete(this.sendCq, c, false),
      completeRecv: (c) => this.complete(this.recvCq, c, c.solicited ?? false),
      peekRecv: () => (this.srq !== null ? this.srq.peek() : (this.rq.at(0) ?? null)),
      takeRecv: () => (this.srq !== null ? this.srq.take() : (this.rq.shift() ?? null)),
      enterError: () => this.enterError(),
      scheduleRequester: () => this.scheduleRequester(),
      restartRetryTimer: () => this.restartRetryTimer(),
      stopRetryTimer: () => this.stopRetryTimer(),
      startRnrTimer: (us) => this.startRnrTimer(us),
      scheduleAck: () => this.scheduleAck(),
    };
    const beforeAtomic = env.beforeAtomic;
    if (beforeAtomic !== undefined) hooks.beforeAtomic = (psn, op) => beforeAtomic(qpn, psn, op);
    this.t = new TransportQp(qpn, options.type, options.pd, transportAttrsOf(this.rec), hooks, QpState.Reset);
    this.requesterIo = { memory: env.memory, wire: env.wire, config: env.requesterConfig, count: env.count, scheduleCompleter: () => this.scheduleRetire() };
  }

  get type(): QpType {
    return this.options.type;
  }
  get state(): QpState {
    return this.t.state;
  }
  /** The state the guest knows: while SUSPENDED, the one it will resume to. */
  get guestState(): QpState {
    return this.t.state === QpState.Suspended ? this.t.resumeState : this.t.state;
  }

  query(): QpAttributes {
    return { ...this.rec, ahAttr: { ...this.rec.ahAttr }, qpState: this.state, curQpState: this.state };
  }

  /** Modify QP (IBTA 11.2.5.2): check the transition and values, then apply and enter the state. */
  modify(attrs: Partial<QpAttributes>, mask: number): void {
    if (!Number.isInteger(mask) || mask < 0) throw invalid(`attribute mask ${mask} is not a bit mask`);
    const from = this.state;
    const to = (mask & QpAttr.STATE) !== 0 ? (attrs.qpState as QpState) : from;
    if ((mask & QpAttr.CUR_STATE) !== 0 && attrs.curQpState !== from) {
      throw invalid(`current state given as ${String(attrs.curQpState)}, but the QP is ${QP_STATE_NAMES[from]}`);
    }
    checkAttrs(attrs, mask, this.env.attrContext);
    const why = checkTransition(this.type, from, to, mask);
    if (why !== null) throw invalid(why);
    applyAttrs(this.rec, this.t.attrs, attrs, mask, this.type);
    this.enter(from, to);
  }

  private enter(from: QpState, to: QpState): void {
    this.t.state = to;
    // Only RESET and ERR leave SUSPENDED this way; what was recorded for resume is moot.
    this.t.suspendAckPsn = -1;
    switch (to) {
      case QpState.Reset:
        this.reset();
        break;
      case QpState.Rtr:
        if (from === QpState.Init) this.t.startResponder(this.rec.rqPsn);
        break;
      case QpState.Rts:
        if (from === QpState.Rtr) this.t.startRequester(this.rec.sqPsn);
        this.scheduleRequester();
        break;
      case QpState.Err:
        this.flush(true);
        break;
      default:
        break;
    }
  }

  /**
   * R6: stop the QP for migration. It sends nothing from now on (no new packets, retransmissions
   * or ACKs: the ACK owed for requests already executed goes out now), its timers stop, and
   * arriving packets are handled by src/nic/roce/suspended.ts until resume().
   */
  suspend(policy: SuspendPolicy): void {
    const from = this.state;
    if (!canSuspend(from)) throw invalid(`a QP in ${QP_STATE_NAMES[from]} cannot be suspended (RTR, RTS, SQD or SQE only)`);
    quiesceResponder(this.t, this.env.responderIo);
    this.t.resumeState = from;
    this.t.suspendDrop = policy === 'drop';
    this.t.suspendAckPsn = -1;
    this.t.state = QpState.Suspended;
    this.stopRetryTimer();
    this.stopRnrTimer();
    this.env.count('suspend');
  }

  /**
   * R6: back to the state the QP was suspended from (or restored in, on another host). Apply
   * what the peer acknowledged meanwhile, give the retry budgets back, go back to the oldest
   * unacknowledged PSN and send from there at once; tell an RC peer the PSN this QP expects.
   */
  resume(): void {
    if (this.state !== QpState.Suspended) throw invalid(`QP ${this.qpn} is ${QP_STATE_NAMES[this.state]}, not SUSPENDED`);
    this.t.state = this.t.resumeState;
    this.env.count('resume');
    // Timeouts while suspended were not the peer's silence (and resume gives the budgets back).
    this.timeoutsInRow = 0;
    this.env.guard(this, 'resume', () => {
      runCompleter(this.t, this.env.completerIo, { kind: 'resume' });
      resumeResponder(this.t, this.env.responderIo);
    });
  }

  /** A transport error: RC QPs go to ERR; a UD send error takes the QP to SQE. */
  enterError(): void {
    if (this.state === QpState.Err || this.state === QpState.Reset) return;
    if (this.type === QpType.Ud) {
      this.t.state = QpState.Sqe;
      this.flush(false);
    } else {
      this.t.state = QpState.Err;
      this.flush(true);
    }
  }

  /** Complete every outstanding send WQE (and receive WQE, with `recv`) with WR_FLUSH_ERR. */
  private flush(recv: boolean): void {
    this.stopRetryTimer();
    this.stopRnrTimer();
    const sq = [...this.t.sq];
    this.t.sq.clear();
    this.t.req.next = 0;
    for (const w of sq) this.complete(this.sendCq, flushed(w.wrId, wcOpcodeOf(w.opcode)), false);
    if (!recv) return;
    const inProgress = this.t.resp.recv;
    this.t.resp.recv = null;
    if (inProgress !== null) this.complete(this.recvCq, flushed(inProgress.wrId, WcOpcode.Recv), false);
    const rq = [...this.rq];
    this.rq.clear();
    for (const w of rq) this.complete(this.recvCq, flushed(w.wrId, WcOpcode.Recv), false);
  }

  /** RESET: everything queued is dropped without completions. */
  private reset(): void {
    this.stopRetryTimer();
    this.stopRnrTimer();
    this.t.sq.clear();
    this.rq.clear();
    this.t.startRequester(0);
    this.t.startResponder(0);
  }

  /** Post a send WQE already checked by the poster. */
  pushSend(w: SendWqe): void {
    if (this.guestState === QpState.Err || this.guestState === QpState.Sqe) {
      this.complete(this.sendCq, flushed(w.wrId, wcOpcodeOf(w.opcode)), false);
      return;
    }
    this.t.sq.push(w);
    this.scheduleRequester();
  }

  pushRecv(w: RecvWqe): void {
    if (this.state === QpState.Err) {
      this.complete(this.recvCq, flushed(w.wrId, WcOpcode.Recv), false);
      return;
    }
    this.rq.push(w);
  }

  /** Destroy: flush what is outstanding, stop the timers, and ignore all later events. */
  /**
   * Leave this provider without completing anything: the QP's state was saved (it is SUSPENDED,
   * so it has no timers and does nothing) and lives on in another shard of the device.
   */
  detach(): void {
    this.stopRetryTimer();
    this.stopRnrTimer();
    this.destroyed = true;
  }

  destroy(): void {
    if (this.state !== QpState.Reset) this.enterError();
    this.t.state = QpState.Err;
    this.stopRetryTimer();
    this.stopRnrTimer();
    this.destroyed = true;
  }

  private complete(cq: SoftCq, c: Completion, solicited: boolean): void {
    const wc: WorkCompletion = {
      wrId: c.wrId, status: c.status, opcode: c.opcode, vendorErr: 0, byteLen: c.byteLen, immData: c.immData >>> 0,
      qpNum: this.qpn, srcQp: c.srcQp, wcFlags: c.wcFlags, pkeyIndex: 0, slid: 0, sl: 0, dlidPathBits: 0,
    };
    // An overrun loses the completion and is fatal to the QP that produced it.
    if (!this.env.deliver(cq, wc, solicited)) this.enterError();
  }

  // ---- scheduling ---------------------------------------------------------------------------

  // Work asked for while SUSPENDED, or queued before it, does not run: resume runs the
  // completer, which schedules the requester, and the responder owes nothing (quiesceResponder).
  private get idle(): boolean {
    return this.destroyed || this.state === QpState.Suspended;
  }

  scheduleRequester(): void {
    if (this.requesterQueued || this.idle) return;
    this.requesterQueued = true;
    setImmediate(() => {
      this.requesterQueued = false;
      if (!this.idle) this.env.guard(this, 'requester', () => runRequester(this.t, this.requesterIo));
    });
  }

  private scheduleRetire(): void {
    if (this.retireQueued || this.idle) return;
    this.retireQueued = true;
    setImmediate(() => {
      this.retireQueued = false;
      if (!this.idle) this.env.guard(this, 'completer', () => runCompleter(this.t, this.env.completerIo, { kind: 'retire' }));
    });
  }

  private scheduleAck(): void {
    // Every ACK asked for within one turn of the event loop goes out as one (ACK coalescing).
    if (this.ackQueued || this.idle) return;
    this.ackQueued = true;
    setImmediate(() => {
      this.ackQueued = false;
      if (!this.idle) this.env.guard(this, 'ack', () => flushAck(this.t, this.env.responderIo));
    });
  }

  // ---- timers -------------------------------------------------------------------------------

  // The local ACK timer (IBTA 9.7.6.1.3) counts device time, from the last packet sent or the
  // last progress. Expiry is checked in two steps: the deadline passes in device time (stalls
  // of the loop do not count), then the verdict waits for a turn in which nothing arrived, so a
  // response already received but not yet read is read first. Progress meanwhile moves the
  // deadline, and the timer simply runs on.

  /** The current interval: the timeout, backed off while timeouts follow each other (timers.ts). */
  private retryIntervalUs(): number | null {
    this.endTimeoutRunOnProgress();
    return retryIntervalUs(this.t.attrs.timeout, this.timeoutsInRow, this.env.retryBackoffCeilingMs * 1000);
  }

  private restartRetryTimer(): void {
    const us = this.retryIntervalUs();
    if (us === null || this.idle) return;
    this.retryDeadlineMs = this.env.clock.nowMs() + us / 1000;
    if (this.retryArmed) return;
    this.retryArmed = true;
    this.env.clock.hold();
    this.armRetryTimer(us / 1000);
  }

  private armRetryTimer(ms: number): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const left = this.retryDeadlineMs - this.env.clock.nowMs();
      if (left > 0) {
        this.armRetryTimer(left);
        return;
      }
      const generation = this.retryGeneration;
      const intervalMs = (this.retryIntervalUs() ?? 0) / 1000;
      this.env.drain.whenDrained({ latestMs: this.retryDeadlineMs + intervalMs, run: () => this.retryExpired(generation) });
    }, Math.max(1, Math.ceil(ms)));
  }

  /** The input is read: a timeout unless progress moved the deadline meanwhile. */
  private retryExpired(generation: number): void {
    if (generation !== this.retryGeneration || !this.retryArmed) return;
    const left = this.retryDeadlineMs - this.env.clock.nowMs();
    if (left > 0) {
      this.env.count('ACK timeout averted by reading input');
      this.armRetryTimer(left);
      return;
    }
    this.disarmRetryTimer();
    if (this.destroyed || (this.state !== QpState.Rts && this.state !== QpState.Sqd)) return;
    this.endTimeoutRunOnProgress();
    this.backoffPsn = this.t.comp.psn;
    this.timeoutsInRow++;
    this.env.guard(this, 'timeout', () => runCompleter(this.t, this.env.completerIo, { kind: 'timeout' }));
  }

  /** Progress since the last timeout (comp.psn moved) ends the run of timeouts. */
  private endTimeoutRunOnProgress(): void {
    if (this.t.comp.psn !== this.backoffPsn) this.timeoutsInRow = 0;
  }

  private stopRetryTimer(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.disarmRetryTimer();
  }

  private disarmRetryTimer(): void {
    this.retryGeneration++;
    if (!this.retryArmed) return;
    this.retryArmed = false;
    this.env.clock.release();
  }

  private startRnrTimer(us: number): void {
    // Not stopRnrTimer(): the completer has just set waitRnr, which holds the requester until
    // the timer runs out.
    if (this.rnrTimer !== null) clearTimeout(this.rnrTimer);
    this.rnrTimer = null;
    if (this.idle) return;
    this.rnrTimer = setTimeout(() => {
      this.rnrTimer = null;
      if (this.idle) return;
      this.t.req.waitRnr = false;
      this.t.req.needRetry = true;
      this.scheduleRequester();
    }, Math.max(1, Math.ceil(us / 1000)));
  }

  private stopRnrTimer(): void {
    if (this.rnrTimer !== null) clearTimeout(this.rnrTimer);
    this.rnrTimer = null;
    this.t.req.waitRnr = false;
  }
}

function flushed(wrId: bigint, opcode: WcOpcode): Completion {
  return { wrId, status: WcStatus.WrFlushErr, opcode, byteLen: 0, immData: 0, wcFlags: 0, srcQp: 0 };
}
