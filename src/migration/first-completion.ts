// When each resumed QP first completed something after a migration (its QP blackout ends then):
// every completion a device takes from its provider passes through the provider's pollCq, so a
// tap on it sees them all. Used by the destination coordinator for a VM whose provider runs in
// its thread, and by a durable backend for its own provider (src/backend), in the worker where
// the completions are taken. Times are instant()s, comparable across threads.
import type { Verbs, WorkCompletion } from '../nic/verbs.js';
import { instant } from './report.js';

/**
 * Tap `verbs.pollCq` until each of `qpns` has completed something or `watchMs` has passed; then
 * take the tap off and resolve with when each did (QPs missing from the map never did).
 */
export async function firstCompletions(verbs: Pick<Verbs, 'pollCq'>, qpns: readonly number[], watchMs: number): Promise<Map<number, number>> {
  const first = new Map<number, number>();
  const waiting = new Set(qpns);
  const tapped = verbs as { pollCq: (cq: number, max: number) => WorkCompletion[] };
  const original = tapped.pollCq;
  const ownBefore = Object.prototype.hasOwnProperty.call(tapped, 'pollCq');
  let done: () => void = () => {};
  const allDone = new Promise<void>((resolve) => {
    done = resolve;
  });
  tapped.pollCq = function tap(this: unknown, cq: number, max: number): WorkCompletion[] {
    const wcs = original.call(this, cq, max);
    for (const wc of wcs) {
      if (waiting.delete(wc.qpNum)) {
        first.set(wc.qpNum, instant());
        if (waiting.size === 0) done();
      }
    }
    return wcs;
  };
  if (waiting.size === 0) done();
  const timer = setTimeout(done, watchMs);
  await allDone;
  clearTimeout(timer);
  if (ownBefore) tapped.pollCq = original;
  else delete (tapped as { pollCq?: unknown }).pollCq;
  return first;
}
