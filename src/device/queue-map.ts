// Virtqueue numbering (docs/device-spec.md §5.1): control queue, then one completion queue per
// CQ index, an SQ/RQ pair per QP index, one queue per SRQ index, then the event queue.

export type QueueRole =
  | { kind: 'control' }
  | { kind: 'cq'; index: number }
  | { kind: 'sq'; index: number }
  | { kind: 'rq'; index: number }
  | { kind: 'srq'; index: number }
  | { kind: 'event' };

export class QueueMap {
  /** `num_queues`: 1 + C + 2Q + S, plus the event queue if offered. */
  readonly numQueues: number;

  constructor(readonly maxCq: number, readonly maxQp: number, readonly maxSrq: number, readonly eventq: boolean) {
    this.numQueues = 1 + maxCq + 2 * maxQp + maxSrq + (eventq ? 1 : 0);
  }

  cq(c: number): number {
    return 1 + c;
  }
  sq(q: number): number {
    return 1 + this.maxCq + 2 * q;
  }
  rq(q: number): number {
    return 1 + this.maxCq + 2 * q + 1;
  }
  srq(s: number): number {
    return 1 + this.maxCq + 2 * this.maxQp + s;
  }
  /** The event queue's number, or -1 when the device has none. */
  get event(): number {
    return this.eventq ? 1 + this.maxCq + 2 * this.maxQp + this.maxSrq : -1;
  }

  /** What queue `vq` is, or null if the device has no such queue. */
  role(vq: number): QueueRole | null {
    if (!Number.isInteger(vq) || vq < 0 || vq >= this.numQueues) return null;
    if (vq === 0) return { kind: 'control' };
    let i = vq - 1;
    if (i < this.maxCq) return { kind: 'cq', index: i };
    i -= this.maxCq;
    if (i < 2 * this.maxQp) return { kind: i % 2 === 0 ? 'sq' : 'rq', index: i >> 1 };
    i -= 2 * this.maxQp;
    if (i < this.maxSrq) return { kind: 'srq', index: i };
    return { kind: 'event' };
  }
}
