// One durable device backend's life in a pool worker (backend-pool.ts): a piscina task that
// starts the backend (fresh, or restored from the device's journal), tells the main thread it
// serves, and runs until the main thread closes it or the backend fails. A backend that fails
// rejects the task; a worker that dies takes its tasks with it. Either way the main thread starts
// the device again, from its journal, on a worker that lives. Importing this module does nothing.
import { type MessagePort, threadId } from 'node:worker_threads';
import type { OpTable } from '../host/ipc.js';
import { servePort } from '../host/pool/port-channel.js';
import { firstCompletions } from '../migration/first-completion.js';
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
  /** The used entries the journal's entry held unpublished, and how many the dead backend had published. */
  restoredUsed: { entries: number; published: number };
}

/** What the `counters` op answers. */
export interface BackendTaskCounters {
  commits: number;
  entryBytes: number;
  commitMs: number;
  released: number;
  dropped: number;
}

export default async function runBackendTask(input: BackendTaskInput): Promise<{ threadId: number }> {
  const { port } = input;
  const backend = await DeviceBackend.start(input.spec, input.mode);
  const ops: OpTable = {
    // The backend stops; the task ends and closes the port, which is what the caller waits for.
    close: () => void backend.close(),
    // The pool's watchdog: answered from this thread's event loop, so a hung loop answers nothing.
    ping: () => true,
    releaseAddress: () => backend.releaseAddress(),
    providerCounters: () => backend.providerCounters(),
    mrKeys: () => backend.mrKeys(),
    // A migrated device's QP blackouts end at their first completions, taken here (first-completion.ts).
    firstCompletions: async (a) => {
      const qpns = a.qpns;
      const ms = Number(a.watchMs);
      if (!Array.isArray(qpns) || qpns.length > 1 << 16 || !qpns.every((q) => Number.isInteger(q))) throw new TypeError('qpns must be a list of QPNs');
      if (!(ms >= 0 && ms <= 600_000)) throw new RangeError('watchMs must be in [0, 600000]');
      return [...(await firstCompletions(backend.verbs, qpns as number[], ms))];
    },
    bindAddress: () => backend.bindAddress(),
    counters: (): BackendTaskCounters => ({ ...backend.counters, released: backend.gateCounters.released, dropped: backend.gateCounters.dropped }),
  };
  // Tests only: an error nobody catches (as a bug in this thread would throw), a loop that stops
  // turning, and a thread that ends at a chosen point of a commit.
  const debugOps: OpTable = {
    faultLater: () => void setTimeout(() => { throw new Error('injected fault in a backend worker'); }, 0),
    stall: (a) => {
      const ms = Number(a.ms);
      if (!(ms > 0 && ms <= 600_000)) throw new RangeError('ms must be in (0, 600000]');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    },
    crashAtNextAtomic: (a) => void (backend.crash = a.after === true ? 'after-atomic' : 'before-atomic'),
    crashAtNextCommit: () => void (backend.crash = 'at-next-commit'),
  };
  servePort(port, input.debugOps === true ? { ...ops, ...debugOps } : ops);
  // The main thread gone: nobody drives this device from here any more.
  port.on('close', () => void backend.close());
  port.postMessage({ ready: true, threadId, epoch: backend.epoch, timings: backend.timings, inDoubt: backend.inDoubt, atomic: backend.atomic, restoredUsed: backend.restoredUsed } satisfies BackendTaskReady);
  try {
    await backend.done;
  } finally {
    port.close();
  }
  return { threadId };
}
