// Judge a local ACK timeout only once the device has read what is waiting for it. A response can
// arrive in time and still sit unread when the timer expires: Node runs expired timers before it
// polls sockets, libuv reads at most a few dozen datagrams per socket per turn, and the loopback
// hub delivers in the check phase of the loop. rxe does the same in its completer, which acts on
// the timer's flag only when its queue of received responses is empty. Here that is: wait for a
// turn of the event loop in which the device received nothing. A peer that keeps sending could
// hold that off for ever, so no verdict waits longer than its own bound (device time).

export interface DrainWaiter {
  /** Device time after which the verdict runs even if input keeps arriving. */
  readonly latestMs: number;
  readonly run: () => void;
}

export class InputDrain {
  private waiters: DrainWaiter[] = [];
  private queued = false;
  private seen = 0;
  private stopped = false;
  /** Turns the verdicts were put off because packets were still arriving, for statistics. */
  deferredTurns = 0;

  constructor(
    /** Packets the device has received so far (any QP). */
    private readonly received: () => number,
    private readonly nowMs: () => number,
  ) {}

  /** Run `w.run` after the first turn of the loop in which no packet arrived (or at `w.latestMs`). */
  whenDrained(w: DrainWaiter): void {
    if (this.stopped) return;
    this.waiters.push(w);
    if (this.queued) return;
    this.seen = this.received();
    this.schedule();
  }

  /** Drop every waiter (the device is closing). */
  stop(): void {
    this.stopped = true;
    this.waiters = [];
  }

  private schedule(): void {
    this.queued = true;
    // setImmediate runs after this turn's poll phase, where sockets are read.
    setImmediate(() => this.check());
  }

  private check(): void {
    this.queued = false;
    if (this.stopped || this.waiters.length === 0) return;
    const n = this.received();
    const quiet = n === this.seen;
    this.seen = n;
    const now = this.nowMs();
    const due = quiet ? this.waiters : this.waiters.filter((w) => now >= w.latestMs);
    this.waiters = quiet ? [] : this.waiters.filter((w) => now < w.latestMs);
    if (this.waiters.length > 0) {
      this.deferredTurns++;
      this.schedule();
    }
    for (const w of due) w.run();
  }
}
