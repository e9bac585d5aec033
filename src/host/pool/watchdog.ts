// The host pool's watchdog for worker threads that hang. A worker that crashes or exits is seen
// by piscina; one whose event loop is stuck (a loop that never yields, a deadlock in native code)
// is not, and every VM on it would stop without a word. The watchdog pings each worker that
// holds tasks (a small op answered by its event loop); a worker that has not answered one ping
// for `hangMs` is reported, and the pool terminates it (its VMs are lost, the thread replaced).
//
// A stall of the main thread itself must not look like a hang of every worker: when a check runs
// late (the main loop was held up), the pings in flight are timed again from then.

/** A worker the pool wants watched: its thread id and a ping its event loop answers. */
export interface WatchedThread {
  threadId: number;
  ping(): Promise<unknown>;
}

export class HangWatchdog {
  private readonly timer: NodeJS.Timeout;
  /** Threads with a ping in flight, and since when (performance.now()). */
  private readonly pending = new Map<number, number>();
  private readonly intervalMs: number;
  private lastCheck = performance.now();

  constructor(
    readonly hangMs: number,
    private readonly threads: () => WatchedThread[],
    private readonly onHung: (threadId: number, silentMs: number) => void,
  ) {
    if (!(hangMs > 0)) throw new RangeError(`hangMs must be positive, got ${hangMs}`);
    this.intervalMs = Math.max(20, hangMs / 4);
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  private check(): void {
    const now = performance.now();
    const late = now - this.lastCheck > 2 * this.intervalMs;
    this.lastCheck = now;
    if (late) for (const id of this.pending.keys()) this.pending.set(id, now);
    const watched = this.threads();
    const live = new Set(watched.map((t) => t.threadId));
    for (const id of this.pending.keys()) if (!live.has(id)) this.pending.delete(id);
    for (const t of watched) {
      const since = this.pending.get(t.threadId);
      if (since !== undefined) {
        if (now - since >= this.hangMs) {
          this.pending.delete(t.threadId);
          this.onHung(t.threadId, now - since);
        }
        continue;
      }
      this.pending.set(t.threadId, now);
      const answered = () => {
        if (this.pending.get(t.threadId) !== undefined) this.pending.delete(t.threadId);
      };
      t.ping().then(answered, answered);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.pending.clear();
  }
}
