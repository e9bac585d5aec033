// Kicks (driver -> device) and calls (device -> driver) as counters in shared memory.
//
// A doorbell is one Int32 word: ring() adds one and wakes waiters; a waiter remembers the value
// it last saw and sleeps in Atomics.wait until the value changes, so no ring is ever missed
// between a check and the sleep. A vhost-user front end's eventfds implement the same interface.

/** Something that can be rung. */
export interface Notifier {
  notify(): void;
}

/** What waiting returned: the doorbell changed, or the timeout passed first. */
export type WaitResult = 'rung' | 'timed-out';

export class Doorbell implements Notifier {
  private readonly word: Int32Array;

  /** A doorbell on the 4-byte-aligned word at `off` in `buffer`. */
  constructor(buffer: SharedArrayBuffer | ArrayBufferLike, readonly off: number) {
    if (off % 4 !== 0) throw new RangeError(`doorbell offset ${off} is not 4-byte aligned`);
    this.word = new Int32Array(buffer, off, 1);
  }

  /** Current count. */
  value(): number {
    return Atomics.load(this.word, 0);
  }

  notify(): void {
    Atomics.add(this.word, 0, 1);
    Atomics.notify(this.word, 0);
  }

  /**
   * Sleep until the count differs from `seen` (the value the caller last acted on). Blocks the
   * thread: call it from a worker, never the main thread's event loop.
   */
  wait(seen: number, timeoutMs = Infinity): WaitResult {
    const result = Atomics.wait(this.word, 0, seen, timeoutMs);
    return result === 'timed-out' ? 'timed-out' : 'rung';
  }

  /** Like wait() but returns a promise, for the main thread. */
  async waitAsync(seen: number, timeoutMs = Infinity): Promise<WaitResult> {
    const r = Atomics.waitAsync(this.word, 0, seen, timeoutMs);
    const value = r.async ? await r.value : r.value;
    return value === 'timed-out' ? 'timed-out' : 'rung';
  }
}
