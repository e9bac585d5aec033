// A shared receive queue: receive WQEs any QP attached to it may consume. When the number of
// WQEs falls below the armed limit, the limit event fires once and disarms.
import { Fifo } from '../../util/fifo.js';
import type { RecvWqe } from '../roce/wqe.js';

export class SoftSrq {
  readonly wqes = new Fifo<RecvWqe>(64);
  users = 0;

  constructor(readonly handle: number, readonly pd: number, readonly maxWr: number, readonly maxSge: number, public limit: number, private readonly onLimit: (srq: number) => void) {}

  take(): RecvWqe | null {
    const wqe = this.wqes.shift() ?? null;
    if (wqe !== null && this.limit > 0 && this.wqes.length < this.limit) {
      this.limit = 0;
      this.onLimit(this.handle);
    }
    return wqe;
  }

  peek(): RecvWqe | null {
    return this.wqes.at(0) ?? null;
  }
}
