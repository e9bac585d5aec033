// Suspending and resuming a VM's QPs for a migration, QP by QP through verbs: what a VM whose
// provider runs in its own thread (src/host/vm.ts) answers to the coordinator's suspendAll and
// resumeAll. A device in another thread does each in one call instead (src/backend/durable-vm.ts).
import { canSuspend } from '../nic/qp-state.js';
import type { Verbs } from '../nic/verbs.js';
import type { QpInstant } from './messages.js';
import { instant } from './report.js';

/**
 * Suspend every QP of `qpns` that can be (canSuspend), ascending, each stamped when it was. If one
 * fails, those suspended are resumed before the error is thrown: none stays suspended.
 */
export function suspendEach(verbs: Pick<Verbs, 'queryQp' | 'suspendQp' | 'resumeQp'>, qpns: Iterable<number>, policy: 'rnr-nak' | 'drop'): QpInstant[] {
  const done: QpInstant[] = [];
  try {
    for (const qpn of [...qpns].sort((a, b) => a - b)) {
      if (!canSuspend(verbs.queryQp(qpn).qpState)) continue;
      verbs.suspendQp(qpn, policy);
      done.push({ qpn, at: instant() });
    }
  } catch (err) {
    for (const q of done) verbs.resumeQp(q.qpn);
    throw err;
  }
  return done;
}

/** Resume `qpns` in order, each stamped when it was; the first failure is thrown. */
export function resumeEach(verbs: Pick<Verbs, 'resumeQp'>, qpns: readonly number[]): QpInstant[] {
  return qpns.map((qpn) => {
    verbs.resumeQp(qpn);
    return { qpn, at: instant() };
  });
}
