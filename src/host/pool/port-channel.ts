// Request/reply over a worker's MessagePort, the same messages as the process IPC channel
// (ipc.ts): a request {id, op, args}, a reply {id, result} or {id, error}, and unasked {event}s.
// The host pool's main thread is the client; each VM task in a worker serves (vm-task.ts).
import type { MessagePort } from 'node:worker_threads';
import { CallTable, type OpRequest, type OpTable, answerOp } from '../ipc.js';

/** Serve `ops` on `port` until it closes; each request runs inside `within` (a task's scope). */
export function servePort(port: MessagePort, ops: OpTable, within: (fn: () => void) => void = (fn) => fn()): void {
  port.on('message', (msg: OpRequest) => {
    within(() => void answerOp(ops, msg).then((reply) => port.postMessage(reply)));
  });
}

/** Calls one client may have in flight; past it a call is refused (the port's queue is bounded). */
export const MAX_CALLS_IN_FLIGHT = 256;

/** The caller's side of a served port. */
export class PortClient {
  private readonly calls: CallTable;
  /** Why calls fail now (the task ended or its worker died); null while it serves. */
  private failure: Error | null = null;
  /** Resolves when the port has closed (the serving side ended, or fail() closed it). */
  readonly closed: Promise<void>;

  constructor(private readonly port: MessagePort, readonly name: string) {
    this.calls = new CallTable(name);
    port.on('message', (m: Parameters<CallTable['take']>[0]) => this.calls.take(m));
    this.closed = new Promise((resolve) => port.once('close', () => {
      this.fail(new Error(`${name}: its port closed`));
      resolve();
    }));
  }

  onEvent(handler: (event: Record<string, unknown>) => void): () => void {
    return this.calls.onEvent(handler);
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.calls.inFlight >= MAX_CALLS_IN_FLIGHT) return Promise.reject(new Error(`${this.name}: ${MAX_CALLS_IN_FLIGHT} calls in flight already; ${op} refused`));
    return this.calls.call<T>(op, args, (req) => this.port.postMessage(req));
  }

  /** Fail every call in flight and every later one with `err`, and close the port. */
  fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.calls.failAll(() => err);
    this.port.close();
  }
}
