// Request/reply over a worker's MessagePort, the same messages as the process IPC channel
// (ipc.ts): a request {id, op, args}, a reply {id, result} or {id, error}, and unasked {event}s.
// The host pool's main thread is the client; each VM task in a worker serves (vm-task.ts).
import type { MessagePort } from 'node:worker_threads';
import { type OpReply, type OpRequest, type OpTable, RemoteError, answerOp } from '../ipc.js';

/** Serve `ops` on `port` until it closes; each request runs inside `within` (a task's scope). */
export function servePort(port: MessagePort, ops: OpTable, within: (fn: () => void) => void = (fn) => fn()): void {
  port.on('message', (msg: OpRequest) => {
    within(() => void answerOp(ops, msg).then((reply) => port.postMessage(reply)));
  });
}

/** Calls one client may have in flight; past it a call is refused (the port's queue is bounded). */
export const MAX_CALLS_IN_FLIGHT = 256;

interface Pending {
  op: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The caller's side of a served port. */
export class PortClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly eventHandlers = new Set<(event: Record<string, unknown>) => void>();
  /** Why calls fail now (the task ended or its worker died); null while it serves. */
  private failure: Error | null = null;

  constructor(private readonly port: MessagePort, readonly name: string) {
    port.on('message', (m: OpReply | { event: Record<string, unknown> }) => {
      if ('event' in m) {
        for (const h of this.eventHandlers) h(m.event);
        return;
      }
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new RemoteError(this.name, p.op, m.error));
      else p.resolve(m.result);
    });
    port.on('close', () => this.fail(new Error(`${name}: its port closed`)));
  }

  onEvent(handler: (event: Record<string, unknown>) => void): () => void {
    this.eventHandlers.add(handler);
    return () => this.eventHandlers.delete(handler);
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.pending.size >= MAX_CALLS_IN_FLIGHT) return Promise.reject(new Error(`${this.name}: ${MAX_CALLS_IN_FLIGHT} calls in flight already; ${op} refused`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ id, op, args } satisfies OpRequest);
    });
  }

  /** Fail every call in flight and every later one with `err`, and close the port. */
  fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.port.close();
  }
}
