// Guest-side CQ, QP and SRQ objects: each wraps its handle and its virtqueues, posts work requests
// and polls completions without any command, and destroys itself with the command plus the queue
// teardown (the device has returned every buffer, §7.5, §7.14, §7.20).
import { NotifyFlag } from '../../device/abi.js';
import type { Cqe } from '../../device/cqe.js';
import type { QpAttr, QpCap } from '../../device/structs.js';
import { bool, int, record } from '../../util/plain.js';
import type { RdmaGuest } from './device.js';
import { CqeRing, type CqeRingState, WqeRing, type WqeRingState, badState } from './queues.js';
import { type RecvRequest, type SendRequest, encodeRecvWqe, encodeSendWqe } from './wqe.js';

export interface QpOptions {
  pd: number;
  /** QpTypeCode: 1 GSI, 2 RC, 4 UD. */
  type: number;
  sendCq: number;
  recvCq: number;
  srq?: number;
  cap: QpCap;
  sigAll?: boolean;
}

/** Plain data: the guest-side objects' state (migration carries it as the guest's). */
export interface GuestCqState {
  cqn: number;
  vq: number;
  depth: number;
  cqes: CqeRingState;
}

export interface GuestQpState {
  qpn: number;
  index: number;
  options: QpOptions;
  cap: QpCap;
  sq: WqeRingState;
  rq: WqeRingState;
}

export interface GuestSrqState {
  srqn: number;
  index: number;
  maxWr: number;
  maxSge: number;
  wq: WqeRingState;
}

const U32 = 0xffffffff;

export class GuestCq {
  constructor(private readonly dev: RdmaGuest, readonly cqn: number, readonly vq: number, readonly depth: number, readonly cqes: CqeRing) {}

  /** Up to `max` completions, oldest first. */
  poll(max = Infinity): Cqe[] {
    return this.cqes.poll(max);
  }

  /**
   * Arm the CQ (§11.3) and ask for the queue's interrupts. Returns true if completions arrived
   * that the arm will not announce (cqes_written differs from what was consumed): poll again.
   */
  async arm(solicitedOnly = false): Promise<boolean> {
    this.cqes.ring.enableCallbacks();
    const written = await this.dev.reqNotifyCq(this.cqn, solicitedOnly ? NotifyFlag.SOLICITED : NotifyFlag.NEXT_COMPLETION);
    return written !== this.cqes.consumed;
  }

  /** The queue's call doorbell value: rises when the device interrupts for this CQ. */
  get interrupts(): number {
    return this.dev.transport.callDoorbell(this.vq).value();
  }

  saveState(): GuestCqState {
    return { cqn: this.cqn, vq: this.vq, depth: this.depth, cqes: this.cqes.saveState() };
  }

  static fromState(dev: RdmaGuest, state: unknown): GuestCq {
    const s = record(state, 'cq', badState);
    const cqn = int(s.cqn, 0, U32, 'cq.cqn', badState);
    return new GuestCq(dev, cqn, int(s.vq, 0, 0xffff, 'cq.vq', badState), int(s.depth, 0, U32, 'cq.depth', badState), CqeRing.fromState(dev, s.cqes, `cq ${cqn} ring`));
  }

  async destroy(): Promise<void> {
    await this.dev.destroyCqCommand(this.cqn);
    this.dev.cqs.delete(this.cqn);
    this.cqes.drain();
    this.dev.releaseQueue(this.vq, null);
    this.cqes.dispose();
  }
}

export class GuestQp {
  constructor(
    private readonly dev: RdmaGuest,
    readonly qpn: number,
    readonly index: number,
    readonly options: QpOptions,
    readonly cap: QpCap,
    readonly sq: WqeRing,
    readonly rq: WqeRing,
  ) {}

  saveState(): GuestQpState {
    return { qpn: this.qpn, index: this.index, options: { ...this.options, cap: { ...this.options.cap } }, cap: { ...this.cap }, sq: this.sq.saveState(), rq: this.rq.saveState() };
  }

  static fromState(dev: RdmaGuest, state: unknown): GuestQp {
    const s = record(state, 'qp', badState);
    const qpn = int(s.qpn, 0, 0xffffff, 'qp.qpn', badState);
    const o = record(s.options, 'qp.options', badState);
    const options: QpOptions = {
      pd: int(o.pd, 0, U32, 'qp.options.pd', badState),
      type: int(o.type, 0, 0xff, 'qp.options.type', badState),
      sendCq: int(o.sendCq, 0, U32, 'qp.options.sendCq', badState),
      recvCq: int(o.recvCq, 0, U32, 'qp.options.recvCq', badState),
      cap: readCap(o.cap, 'qp.options.cap'),
    };
    if (o.srq !== undefined) options.srq = int(o.srq, 0, U32, 'qp.options.srq', badState);
    if (o.sigAll !== undefined) options.sigAll = bool(o.sigAll, 'qp.options.sigAll', badState);
    return new GuestQp(dev, qpn, int(s.index, 0, 0xffff, 'qp.index', badState), options, readCap(s.cap, 'qp.cap'),
      WqeRing.fromState(dev, s.sq, `qp ${qpn} send queue`), WqeRing.fromState(dev, s.rq, `qp ${qpn} receive queue`));
  }

  postSend(wrs: readonly SendRequest[]): void {
    this.sq.post(wrs.map((wr) => ({ bytes: encodeSendWqe(wr), wrId: wr.wrId })));
  }

  postRecv(wrs: readonly RecvRequest[]): void {
    this.rq.post(wrs.map((wr) => ({ bytes: encodeRecvWqe(wr), wrId: wr.wrId })));
  }

  modify(mask: number, attr: Partial<QpAttr>): Promise<void> {
    return this.dev.modifyQp(this.qpn, mask, attr);
  }

  query(): Promise<QpAttr> {
    return this.dev.queryQp(this.qpn);
  }

  async destroy(): Promise<void> {
    await this.dev.destroyQpCommand(this.qpn);
    this.dev.qps.delete(this.qpn);
    this.sq.reclaim();
    this.rq.reclaim();
    this.dev.releaseQueue(this.sq.vq, null);
    this.dev.releaseQueue(this.rq.vq, null);
    this.sq.dispose();
    this.rq.dispose();
  }
}

export class GuestSrq {
  constructor(private readonly dev: RdmaGuest, readonly srqn: number, readonly index: number, readonly maxWr: number, readonly maxSge: number, readonly wq: WqeRing) {}

  saveState(): GuestSrqState {
    return { srqn: this.srqn, index: this.index, maxWr: this.maxWr, maxSge: this.maxSge, wq: this.wq.saveState() };
  }

  static fromState(dev: RdmaGuest, state: unknown): GuestSrq {
    const s = record(state, 'srq', badState);
    const srqn = int(s.srqn, 0, U32, 'srq.srqn', badState);
    return new GuestSrq(dev, srqn, int(s.index, 0, 0xffff, 'srq.index', badState), int(s.maxWr, 0, U32, 'srq.maxWr', badState), int(s.maxSge, 0, U32, 'srq.maxSge', badState),
      WqeRing.fromState(dev, s.wq, `srq ${srqn} queue`));
  }

  postRecv(wrs: readonly RecvRequest[]): void {
    this.wq.post(wrs.map((wr) => ({ bytes: encodeRecvWqe(wr), wrId: wr.wrId })));
  }

  modifyLimit(limit: number): Promise<void> {
    return this.dev.modifySrq(this.srqn, 2, 0, limit);
  }

  query(): Promise<{ maxWr: number; maxSge: number; limit: number }> {
    return this.dev.querySrq(this.srqn);
  }

  async destroy(): Promise<void> {
    await this.dev.destroySrqCommand(this.srqn);
    this.dev.srqs.delete(this.srqn);
    this.wq.reclaim();
    this.dev.releaseQueue(this.wq.vq, null);
    this.wq.dispose();
  }
}

function readCap(value: unknown, what: string): QpCap {
  const c = record(value, what, badState);
  const field = (name: string) => int(c[name], 0, U32, `${what}.${name}`, badState);
  const cap: QpCap = { maxSendWr: field('maxSendWr'), maxRecvWr: field('maxRecvWr'), maxSendSge: field('maxSendSge'), maxRecvSge: field('maxRecvSge'), maxInlineData: field('maxInlineData') };
  return cap;
}
