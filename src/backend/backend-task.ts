// One durable device backend's life in a pool worker (backend-pool.ts): a piscina task that
// starts the backend (fresh, or restored from the device's journal), tells the main thread it
// serves, and runs until the main thread closes it or the backend fails. A backend that fails
// rejects the task; a worker that dies takes its tasks with it. Either way the main thread starts
// the device again, from its journal, on a worker that lives. Importing this module does nothing.
import { type MessagePort, threadId } from 'node:worker_threads';
import type { IntentOutcome } from './atomic-intent.js';
import { type BackendSpec, DeviceBackend, type StartTimings } from './device-backend.js';

export interface BackendTaskInput {
  spec: BackendSpec;
  mode: 'fresh' | 'restore';
  port: MessagePort;
  /** Serve the fault-injection op (tests). */
  debugOps?: boolean;
}

/** The first message on the port: the backend serves, in this thread. */
export interface BackendTaskReady {
  ready: true;
  threadId: number;
  epoch: number;
  timings: StartTimings;
  /** QPs moved to ERR at the start: an atomic of theirs was in doubt. */
  inDoubt: number[];
  /** The atomic the journal's entry was committed before, and how the start settled it. */
  atomic: { qpn: number; outcome: IntentOutcome } | null;
}

/** What the port answers to `{ op: 'counters' }`. */
export interface BackendTaskCounters {
  counters: { commits: number; entryBytes: number; commitMs: number; released: number; dropped: number };
}

export default async function runBackendTask(input: BackendTaskInput): Promise<{ threadId: number }> {
  const { port } = input;
  const backend = await DeviceBackend.start(input.spec, input.mode);
  port.on('message', (m: { op?: unknown; ms?: unknown; after?: unknown }) => {
    if (m?.op === 'close') void backend.close();
    // The pool's watchdog: answered from this thread's event loop, so a hung loop answers nothing.
    else if (m?.op === 'ping') port.postMessage({ pong: true });
    // Tests only (debugOps): an error nobody catches, as a bug in this thread would throw, and a
    // loop that stops turning.
    else if (m?.op === 'faultLater' && input.debugOps === true) setTimeout(() => { throw new Error('injected fault in a backend worker'); }, 0);
    else if (m?.op === 'crashAtNextAtomic' && input.debugOps === true) backend.crash = m.after === true ? 'after-atomic' : 'before-atomic';
    else if (m?.op === 'crashAtNextCommit' && input.debugOps === true) backend.crash = 'at-next-commit';
    else if (m?.op === 'stall' && input.debugOps === true && typeof m.ms === 'number' && m.ms > 0 && m.ms <= 600_000) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.ms);
    else if (m?.op === 'counters') {
      const g = backend.gateCounters;
      port.postMessage({ counters: { ...backend.counters, released: g.released, dropped: g.dropped } } satisfies BackendTaskCounters);
    }
  });
  // The main thread gone: nobody drives this device from here any more.
  port.on('close', () => void backend.close());
  port.postMessage({ ready: true, threadId, epoch: backend.epoch, timings: backend.timings, inDoubt: backend.inDoubt, atomic: backend.atomic } satisfies BackendTaskReady);
  try {
    await backend.done;
  } finally {
    port.close();
  }
  return { threadId };
}
