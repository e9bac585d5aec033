// Fault isolation between the VM tasks that share a worker thread (vm-task.ts). Each task runs
// everything it does — its op handlers, and so every socket, timer and promise they start — in an
// AsyncLocalStorage scope of its own. An exception nobody caught, or a promise rejection nobody
// handled, is then charged to the task whose scope it arose in: that task fails (its VM is given
// up and the main thread told why) and the worker, with the other VMs on it, carries on. Only an
// error that no task owns ends the worker, as Node would have ended it.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface TaskScope {
  readonly task: number;
  /** An uncaught error arose in this task's scope. */
  fault(err: Error): void;
}

/** How a task's rejection says its VM failed in its own scope (rather than its worker dying). */
export const TASK_FAULT_PREFIX = 'VM task fault: ';

/** Exit status of a worker ended by an uncaught error that no VM task owns. */
export const EXIT_UNOWNED_FAULT = 71;

const scopes = new AsyncLocalStorage<TaskScope>();
let installed = false;

/** In this thread, route uncaught errors to the task they arose in (once per thread). */
export function installFaultRouting(): void {
  if (installed) return;
  installed = true;
  const route = (err: unknown): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    const scope = scopes.getStore();
    if (scope === undefined) {
      process.stderr.write(`vrdma worker: an uncaught error no VM task owns: ${e.stack ?? e.message}\n`);
      process.exit(EXIT_UNOWNED_FAULT);
    }
    scope.fault(e);
  };
  process.on('uncaughtException', route);
  process.on('unhandledRejection', route);
}

/** Run `fn` in the task's scope: what it starts belongs to the task. */
export function inScope<T>(scope: TaskScope, fn: () => T): T {
  return scopes.run(scope, fn);
}
