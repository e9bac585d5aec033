// Guest-side CQ, QP and SRQ objects: each wraps its handle and its virtqueues, posts work requests
// and polls completions without any command, and destroys itself with the command plus the queue
// teardown (the device has returned every buffer, §7.5, §7.14, §7.20).
import { NotifyFlag } from '../../device/abi.js';
import type { Cqe } from '../../device/cqe.js';
import type { QpAttr, QpCap } from '../../device/structs.js';
import type { RdmaGuest } from './device.js';
import { CqeRing, WqeRing } from './queues.js';
import type { GuestRing } from './ring.js';
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

  async destroy(): Promise<void> {
    await this.dev.destroyCqCommand(this.cqn);
    this.cqes.drain();
    this.dev.releaseQueue(this.vq, null);
    this.cqes.dispose();
  }
}

export class GuestQp {
  readonly sq: WqeRing;
  readonly rq: WqeRing;

  constructor(
    private readonly dev: RdmaGuest,
    readonly qpn: number,
    readonly index: number,
    readonly options: QpOptions,
    readonly cap: QpCap,
    sqRing: GuestRing,
    sendSlotBytes: number,
    rqRing: GuestRing,
    recvSlotBytes: number,
  ) {
    const map = dev.transport.map;
    this.sq = new WqeRing(dev, map.sq(index), sqRing, sendSlotBytes);
    this.rq = new WqeRing(dev, map.rq(index), rqRing, recvSlotBytes);
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
    this.sq.reclaim();
    this.rq.reclaim();
    this.dev.releaseQueue(this.sq.vq, null);
    this.dev.releaseQueue(this.rq.vq, null);
    this.sq.dispose();
    this.rq.dispose();
  }
}

export class GuestSrq {
  readonly wq: WqeRing;

  constructor(private readonly dev: RdmaGuest, readonly srqn: number, readonly index: number, readonly maxWr: number, readonly maxSge: number, ring: GuestRing) {
    this.wq = new WqeRing(dev, dev.transport.map.srq(index), ring, 16 + 16 * maxSge);
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
    this.wq.reclaim();
    this.dev.releaseQueue(this.wq.vq, null);
    this.wq.dispose();
  }
}
