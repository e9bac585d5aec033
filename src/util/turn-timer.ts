// One pending callback on the event loop, either at the next turn (setImmediate) or after a
// delay (setTimeout), cancelled with the function of its own kind. Node's clearImmediate() given
// a Timeout does not ignore it: it decrements the process's count of pending immediates, after
// which no setImmediate callback in the process ever runs again (Node 20; the event loop skips
// its check phase when the count is 0). A busy-polling loop that sleeps between idle turns must
// therefore remember which kind it armed.

export class TurnTimer {
  private immediate: NodeJS.Immediate | null = null;
  private timeout: NodeJS.Timeout | null = null;

  constructor(private readonly fn: () => void) {}

  get pending(): boolean {
    return this.immediate !== null || this.timeout !== null;
  }

  /** Run fn at the next turn of the event loop (replacing whatever was pending). */
  soon(): void {
    this.cancel();
    this.immediate = setImmediate(this.fire);
  }

  /** Run fn after `ms` milliseconds (replacing whatever was pending). */
  after(ms: number): void {
    this.cancel();
    this.timeout = setTimeout(this.fire, ms);
  }

  cancel(): void {
    if (this.immediate !== null) clearImmediate(this.immediate);
    if (this.timeout !== null) clearTimeout(this.timeout);
    this.immediate = null;
    this.timeout = null;
  }

  private readonly fire = (): void => {
    this.immediate = null;
    this.timeout = null;
    this.fn();
  };
}
