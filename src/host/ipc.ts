// Request/reply over a forked child's IPC channel (advanced serialization, so bigints, Maps and
// byte arrays cross as they are). A request is {id, op, args}; the reply {id, result} or
// {id, error}. The child announces {ready: true} once it serves. Host processes (the agent,
// the test hosts) serve; whoever forked them is the client.
import { type ChildProcess, fork } from 'node:child_process';

export type OpTable = Record<string, (args: Record<string, unknown>) => unknown>;

/** How long a child may take to close after its parent disconnects before it just exits. */
export const CLOSE_DEADLINE_MS = 5000;
/** The exit status of a child whose closing did not finish in time. */
export const EXIT_CLOSE_HUNG = 70;

export interface IpcErrorReply {
  name: string;
  message: string;
  code?: string;
}

/** A request on any channel (a process's IPC, a worker's MessagePort). */
export interface OpRequest {
  id: number;
  op: string;
  args?: Record<string, unknown>;
}

export type OpReply = { id: number; result: unknown } | { id: number; error: IpcErrorReply };

/** Run one request against `ops`; never rejects (a failure is the error reply). */
export async function answerOp(ops: OpTable, msg: OpRequest): Promise<OpReply> {
  try {
    const fn = Object.hasOwn(ops, msg.op) ? ops[msg.op] : undefined;
    if (fn === undefined) throw new Error(`unknown op ${msg.op}`);
    return { id: msg.id, result: await fn(msg.args ?? {}) };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return { id: msg.id, error: { name: e.name, message: e.message, code: (e as { code?: unknown }).code as string | undefined } };
  }
}

/** Serve `ops` on this process's IPC channel until it disconnects. */
export function serveIpc(ops: OpTable, onDisconnect: () => void = () => process.exit(0)): void {
  if (process.send === undefined) throw new Error('serveIpc: this process has no IPC channel (start it with fork)');
  const send = process.send.bind(process);
  process.on('message', (msg: OpRequest) => {
    void answerOp(ops, msg).then(send);
  });
  process.on('disconnect', () => {
    // Whatever closing does, the process must end: a child that outlived its parent would hold
    // the parent's inherited stdio open (a test runner reading it would wait for ever).
    setTimeout(() => process.exit(EXIT_CLOSE_HUNG), CLOSE_DEADLINE_MS).unref();
    onDisconnect();
  });
  send({ ready: true });
}

/** Tell the parent something unasked (progress while an op runs): {event} on the IPC channel. */
export function sendEvent(event: Record<string, unknown>): void {
  process.send?.({ event });
}

/** An op failed in the child. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(readonly who: string, readonly op: string, readonly remote: IpcErrorReply) {
    super(`${who}: ${op}: ${remote.name}: ${remote.message}`);
  }
}

/**
 * The caller's bookkeeping of one request/reply channel (a forked child's IPC, a worker's port):
 * numbered calls waiting for their replies, and listeners of the unasked events.
 */
export class CallTable {
  private nextId = 1;
  private readonly pending = new Map<number, { op: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly eventHandlers = new Set<(event: Record<string, unknown>) => void>();

  constructor(private readonly who: string) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /** Number a call, hand the request to `post`, and wait for its reply. */
  call<T>(op: string, args: Record<string, unknown>, post: (req: OpRequest) => void): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject });
      post({ id, op, args });
    });
  }

  /** A message from the other end: a reply settles its call, an event goes to the listeners. */
  take(m: { id?: number; result?: unknown; error?: IpcErrorReply; event?: Record<string, unknown> }): void {
    if (m.event !== undefined) for (const h of this.eventHandlers) h(m.event);
    if (m.id === undefined) return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    if (m.error !== undefined) p.reject(new RemoteError(this.who, p.op, m.error));
    else p.resolve(m.result);
  }

  onEvent(handler: (event: Record<string, unknown>) => void): () => void {
    this.eventHandlers.add(handler);
    return () => this.eventHandlers.delete(handler);
  }

  /** Fail every call waiting, each with what `why(op)` says. */
  failAll(why: (op: string) => Error): void {
    for (const p of this.pending.values()) p.reject(why(p.op));
    this.pending.clear();
  }
}

export interface IpcChildOptions {
  args?: string[];
  /** Name used in errors. */
  name?: string;
  /** stdio of the child; default: inherit (its stderr logs go where ours go). */
  stdio?: 'inherit' | 'ignore' | 'pipe';
  execArgv?: string[];
}

/** The parent's side: fork `script`, call its ops, stop it. */
export class IpcChild {
  readonly proc: ChildProcess;
  readonly name: string;
  readonly started: Promise<void>;
  private readonly calls: CallTable;
  private exitCode: number | null = null;
  private readonly exited: Promise<void>;

  constructor(script: string, options: IpcChildOptions = {}) {
    this.name = options.name ?? script;
    this.calls = new CallTable(this.name);
    const stdio = options.stdio ?? 'inherit';
    this.proc = fork(script, options.args ?? [], { stdio: [stdio, stdio, stdio, 'ipc'], serialization: 'advanced', execArgv: options.execArgv });
    this.started = new Promise((resolve, reject) => {
      const onMessage = (m: { ready?: boolean }) => {
        if (m.ready !== true) return;
        this.proc.off('message', onMessage);
        resolve();
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', (code) => reject(new Error(`${this.name} exited with ${code} before it was ready`)));
    });
    // A rejection nobody awaits yet must not crash the parent; callers see it when they await.
    this.started.catch(() => {});
    this.proc.on('message', (m: Parameters<CallTable['take']>[0]) => this.calls.take(m));
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal !== null ? 128 : 0);
        this.calls.failAll((op) => new Error(`${this.name} exited (${code ?? signal}) during ${op}`));
        resolve();
      });
    });
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /** Listen to the child's events (sendEvent); returns the function that stops listening. */
  onEvent(handler: (event: Record<string, unknown>) => void): () => void {
    return this.calls.onEvent(handler);
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running`));
    return this.calls.call<T>(op, args, (req) => this.proc.send(req));
  }

  /**
   * Ask the child to close (`op`, answered within `replyMs`), then disconnect and wait for it to
   * exit, killing it if it lingers. Never hangs: a child that does not answer is killed, and the
   * reason is returned (null when it closed as asked).
   */
  async stop(op: string, replyMs = 10_000, graceMs = 5000): Promise<string | null> {
    if (!this.running) return null;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`${this.name} did not answer ${op} within ${replyMs} ms; killed`), replyMs);
    });
    const answered = this.call(op).then(() => null, (err: unknown) => `${this.name}: ${op} failed: ${err instanceof Error ? err.message : String(err)}`);
    const problem = await Promise.race([answered, late]);
    clearTimeout(timer);
    await this.disconnect(problem === null ? graceMs : 0);
    if (problem !== null) process.emitWarning(problem, 'VrdmaHostStop');
    return problem;
  }

  /** Close the channel (the child exits when it sees that) and wait; kill it if it lingers. */
  async disconnect(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    if (this.proc.connected) this.proc.disconnect();
    if (graceMs <= 0) this.proc.kill('SIGKILL');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
