// A completion queue: a bounded FIFO of work completions. A completion that finds the CQ full
// is an overrun (IBTA "CQ overrun", an asynchronous CQ error): the CQ enters an error state, the completion is
// lost, and the QP that produced it goes to ERR; polling an overrun CQ fails from then on.
import { Fifo } from '../../util/fifo.js';
import { VerbsError, VerbsErrorCode } from '../errors.js';
import type { WorkCompletion } from '../verbs.js';

export class SoftCq {
  private readonly entries: Fifo<WorkCompletion>;
  overrun = false;
  /** reqNotifyCq: 'all' fires on the next completion, 'solicited' on the next solicited one. */
  armed: 'none' | 'all' | 'solicited' = 'none';
  /** QPs whose send or receive completions come here (a CQ in use cannot be destroyed). */
  users = 0;

  constructor(readonly handle: number, readonly depth: number) {
    this.entries = new Fifo<WorkCompletion>(Math.min(depth, 1024));
  }

  get length(): number {
    return this.entries.length;
  }

  /** Queue a completion; returns whether an armed event fires, or null on overrun. */
  push(wc: WorkCompletion, solicited: boolean): boolean | null {
    if (this.overrun) return null;
    if (this.entries.length >= this.depth) {
      this.overrun = true;
      return null;
    }
    this.entries.push(wc);
    const fire = this.armed === 'all' || (this.armed === 'solicited' && (solicited || wc.status !== 0));
    if (fire) this.armed = 'none';
    return fire;
  }

  /** Copies of the completions not yet polled, oldest first (saved state, R9). */
  snapshot(): WorkCompletion[] {
    return [...this.entries].map((wc) => ({ ...wc }));
  }

  /** Queue restored completions as they were: no arming fires, no overrun is counted. */
  load(entries: readonly WorkCompletion[]): void {
    if (this.entries.length + entries.length > this.depth) throw new VerbsError(VerbsErrorCode.InvalidArgument, `${entries.length} completions exceed CQ ${this.handle}'s ${this.depth}`);
    for (const wc of entries) this.entries.push({ ...wc });
  }

  /** reqNotifyCq: the next completion (or the next solicited one) fires an event. */
  arm(solicitedOnly: boolean): void {
    this.armed = solicitedOnly && this.armed !== 'all' ? 'solicited' : 'all';
  }

  poll(max: number): WorkCompletion[] {
    if (!Number.isInteger(max) || max < 0) throw new VerbsError(VerbsErrorCode.InvalidArgument, `poll count ${max} is not a count`);
    if (this.overrun) throw new VerbsError(VerbsErrorCode.IoError, `CQ ${this.handle} overran its ${this.depth} entries`);
    const out: WorkCompletion[] = [];
    while (out.length < max && this.entries.length > 0) out.push(this.entries.shift() as WorkCompletion);
    return out;
  }
}
