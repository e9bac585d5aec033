// The device's own clock for the local ACK timer: wall-clock time less the time the event loop
// could not run. A NIC's transport timer runs beside its receive path and is never paused; this
// device's timer, receive path and (on the loopback hub, or with both VMs in one process) its
// peer all share one thread. When the host deschedules the process, a collector pauses it, or
// one turn of the loop runs long, requests and responses wait unprocessed — in the kernel's socket
// buffer, in the hub's queue, in the peer's — while wall-clock time passes. Counted against the
// local ACK timeout (IBTA vol. 1 9.7.6.1.3), that time fires the timer with the answer already
// waiting: a go-back-N, duplicate requests and responses, and under steady load a retry budget
// spent on no loss at all (RETRY_EXC_ERR). So while any timer needs it, a ticker samples the loop
// every `tickMs`; a gap between two observations longer than the tick is a stall, and the part
// beyond one tick does not count. Any other observation (nowMs() on every send) also proves
// the loop was running at that moment.

/** How often the loop is sampled while a timer runs: the resolution of stall detection. */
export const RUN_CLOCK_TICK_MS = 1;

export class RunClock {
  private stalledMs = 0;
  private lastSeenMs: number;
  private ticker: NodeJS.Timeout | null = null;
  private holders = 0;
  /** Stalls seen (gaps of more than two ticks), for statistics. */
  stalls = 0;
  constructor(
    private readonly tickMs = RUN_CLOCK_TICK_MS,
    private readonly wallMs: () => number = () => performance.now(),
  ) {
    this.lastSeenMs = wallMs();
  }

  /** Device time in milliseconds (any origin): wall-clock time less the stalls seen so far. */
  nowMs(): number {
    this.observe();
    return this.lastSeenMs - this.stalledMs;
  }

  /** Milliseconds of stall discounted so far. */
  get discountedMs(): number {
    return this.stalledMs;
  }

  /** A timer starts: sample the loop until every holder has released. */
  hold(): void {
    if (this.holders++ > 0) return;
    // Time before the first holder was idle, not stalled.
    this.lastSeenMs = this.wallMs();
    this.ticker = setInterval(() => this.observe(), this.tickMs);
    // Sampling must not keep a process alive that has nothing else to do.
    this.ticker.unref();
  }

  release(): void {
    if (this.holders === 0) return;
    if (--this.holders > 0) return;
    this.observe();
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
  }

  /** Stop sampling whatever the holders (the device is closing). */
  stop(): void {
    this.holders = 1;
    this.release();
  }

  /** The loop is running now: a gap since the last observation beyond one tick was a stall. */
  private observe(): void {
    const now = this.wallMs();
    if (this.holders > 0) {
      const gapMs = now - this.lastSeenMs;
      if (gapMs > this.tickMs) this.stalledMs += gapMs - this.tickMs;
      if (gapMs > 2 * this.tickMs) this.stalls++;
    }
    this.lastSeenMs = now;
  }
}
