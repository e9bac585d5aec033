// One VM's life in a host pool's worker thread (host-pool.ts): a piscina task that holds a host
// agent (../agent.ts) for the VM opened — or taken in by migration — through it, and serves the
// agent's operations on the MessagePort it was given until the main thread ends it (the VM was
// closed or migrated away) or its port closes. The VM's guest memory, device and RoCE engine live
// in this thread, and its whole data path runs here. Its UDP socket is bound here too (socket
// 'worker', the default), or held by the main thread (socket 'main'): datagrams then cross through
// two packet rings in shared memory (pool-sockets.ts), not postMessage.
// Several VM tasks may share one worker; each has its own agent. Importing this module does
// nothing; piscina calls its default export.
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { threadId } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { type LogLevel, createLogger } from '../../observe/log.js';
import { HostAgent, agentOps } from '../agent.js';
import { PortClient, servePort } from './port-channel.js';
import { socketOpener } from './pool-sockets.js';
import { TASK_FAULT_PREFIX, type TaskScope, inScope, installFaultRouting } from './task-scope.js';

export interface VmTaskInput {
  host: string;
  /** The task's number in its pool: it names the task in logs. */
  task: number;
  logLevel: LogLevel;
  port: MessagePort;
  /** With it, the VM's socket is held by the main thread, which serves its binds here (pool-sockets.ts). */
  sockets?: MessagePort;
}

/** What a worker thread is doing: its heap, and how busy its event loop has been since it started. */
export interface ThreadStats {
  threadId: number;
  heapUsedBytes: number;
  /** Event-loop utilization (0 idle .. 1 never idle) and the active and idle milliseconds behind it. */
  utilization: number;
  activeMs: number;
  idleMs: number;
}

function threadStats(): ThreadStats {
  const elu = performance.eventLoopUtilization();
  return { threadId, heapUsedBytes: getHeapStatistics().used_heap_size, utilization: elu.utilization, activeMs: elu.active, idleMs: elu.idle };
}

/**
 * Ops for tests, served only when VRDMA_DEBUG_OPS=1 is in the environment: `stallThread` blocks
 * this worker's event loop for `ms` (a hung worker, for the pool's watchdog to find);
 * `faultLater` throws from a timer, or rejects a promise nobody handles, in the task's scope (a
 * bug in one VM's code, for the fault routing to charge to that task alone).
 */
const debugOps = {
  faultLater: (a: Record<string, unknown>) => {
    if (a.kind === 'rejection') void Promise.reject(new Error('injected rejection'));
    else setTimeout(() => { throw new Error('injected exception'); }, 0);
  },
  stallThread: (a: Record<string, unknown>) => {
    const ms = Number(a.ms);
    if (!(ms > 0 && ms <= 600_000)) throw new RangeError('ms must be in (0, 600000]');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  },
};

export interface VmTaskResult {
  task: number;
  threadId: number;
}

/** The first message on the port: the task serves, in this thread. */
export interface VmTaskReady {
  ready: true;
  threadId: number;
}

/** How long a failed task tries to close its VM before it gives up on it. */
const FAULT_CLOSE_MS = 5000;

export default function runVmTask(input: VmTaskInput): Promise<VmTaskResult> {
  const { port } = input;
  const log = createLogger(input.logLevel, { host: input.host, task: input.task, thread: threadId });
  const sockets = input.sockets === undefined ? null : new PortClient(input.sockets, `VM task ${input.task}'s sockets`);
  const agent = new HostAgent(input.host, log, (event) => port.postMessage({ event }), null, sockets === null ? null : (ip) => socketOpener(sockets, ip));
  installFaultRouting();
  return new Promise((resolve, reject) => {
    let ending = false;
    const end = async (): Promise<void> => {
      if (ending) return;
      ending = true;
      await agent.close().catch((err: unknown) => log.error({ err }, 'closing the VM task failed'));
      // The reply to endTask is posted before the port closes and the task returns.
      setImmediate(() => {
        port.close();
        input.sockets?.close();
        resolve({ task: input.task, threadId });
      });
    };
    const scope: TaskScope = {
      task: input.task,
      fault: (err) => {
        if (ending) {
          log.error({ err }, 'an uncaught error in a VM task that is ending or already failed');
          return;
        }
        ending = true;
        log.error({ err }, 'the VM task failed: its VM is given up');
        const closed = agent.close().catch(() => {});
        void Promise.race([closed, new Promise((r) => setTimeout(r, FAULT_CLOSE_MS).unref())]).then(() => {
          port.close();
          input.sockets?.close();
          reject(new Error(`${TASK_FAULT_PREFIX}${err.message}`));
        });
      },
    };
    inScope(scope, () => {
      servePort(port, {
        ...agentOps(agent, end),
        /** What the pool's metrics read: this task's VMs, as the host's registry counts them. */
        snapshot: () => agent.metricsSnapshot(),
        endTask: () => end(),
        threadStats,
        ...(process.env.VRDMA_DEBUG_OPS === '1' ? debugOps : {}),
      }, (fn) => inScope(scope, fn));
      // The main thread gone (the port closed under us): nobody can reach this VM any more.
      port.on('close', () => void end());
      port.postMessage({ ready: true, threadId } satisfies VmTaskReady);
    });
  });
}
