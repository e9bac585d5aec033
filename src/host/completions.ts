// Waiting for completions from the guest's side. The device runs inline, so CQEs land in the
// CQ's ring while the event loop handles packets; the guest polls between turns of the loop
// (setImmediate lets socket callbacks and the provider's timers run in between), as a busy-polling
// RDMA application does.
import type { Cqe } from '../device/cqe.js';
import type { GuestCq } from '../guest/rdma/objects.js';

export class CompletionTimeout extends Error {
  constructor(readonly wanted: number, readonly got: Cqe[], timeoutMs: number) {
    super(`${got.length} of ${wanted} completions within ${timeoutMs} ms`);
    this.name = 'CompletionTimeout';
  }
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Poll `cq` until at least `count` completions have arrived; returns every completion polled
 * (more than `count` if more were there). Rejects with CompletionTimeout after `timeoutMs`.
 */
export async function waitForCompletions(cq: GuestCq, count: number, timeoutMs = 10_000): Promise<Cqe[]> {
  const got: Cqe[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const c of cq.poll()) got.push(c);
    if (got.length >= count) return got;
    if (Date.now() > deadline) throw new CompletionTimeout(count, got, timeoutMs);
    await yieldToLoop();
  }
}
