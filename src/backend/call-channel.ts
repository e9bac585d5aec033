// One synchronous call at a time from a driver to its device backend, through the call area of
// the shared control block (control-block.ts): the driver's side blocks in Atomics.wait — a
// vCPU's register access is synchronous, and the thread that drives a device is not the one that
// runs it — while the backend serves from its event loop with Atomics.waitAsync. Calls and
// answers are JSON (bigints and byte arrays tagged) of at most CALL_BYTES.
//
// Call states: IDLE -> REQUEST (driver) -> RUNNING (backend took it) -> ANSWER (backend) -> IDLE
// (driver read it). A driver that times out withdraws a call the backend has not taken yet; one a
// backend took stays with it. A backend that starts finding a call RUNNING knows its predecessor
// died during it and answers INTERRUPTED: the call may or may not have taken effect.
import { CALL_BYTES, type ControlBlock, W } from './control-block.js';
import { BackendError, BackendErrorCode } from './errors.js';

const IDLE = 0;
const REQUEST = 1;
const ANSWER = 2;
const RUNNING = 3;

export interface Call {
  method: string;
  args: unknown[];
}

type Answer = { ok: true; value: unknown } | { ok: false; error: { name: string; code?: unknown; status?: unknown; message: string } };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // The holder's own value: a Buffer has already become { type, data } through its toJSON.
  const raw = this[key];
  if (typeof raw === 'bigint') return { $bigint: raw.toString() };
  if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && Object.keys(value).length === 1) {
    const v = value as { $bigint?: unknown; $bytes?: unknown };
    if (typeof v.$bigint === 'string' && /^-?\d{1,40}$/.test(v.$bigint)) return BigInt(v.$bigint);
    if (typeof v.$bytes === 'string') return new Uint8Array(Buffer.from(v.$bytes, 'base64'));
  }
  return value;
}

function put(block: ControlBlock, value: unknown): void {
  const bytes = encoder.encode(JSON.stringify(value, replacer));
  if (bytes.length > CALL_BYTES) throw new BackendError(BackendErrorCode.BadCall, `a call or answer of ${bytes.length} bytes exceeds the ${CALL_BYTES}-byte call area`);
  block.bytes.set(bytes, block.callOff);
  block.store(W.callLength, bytes.length);
}

function take(block: ControlBlock): unknown {
  const len = block.load(W.callLength);
  if (!(len > 0 && len <= CALL_BYTES)) throw new BackendError(BackendErrorCode.BadCall, `call length ${len} is outside the call area`);
  // Copy out of the shared buffer first: TextDecoder does not read shared memory.
  const bytes = block.bytes.slice(block.callOff, block.callOff + len);
  try {
    return JSON.parse(decoder.decode(bytes), reviver) as unknown;
  } catch {
    throw new BackendError(BackendErrorCode.BadCall, 'a call or answer is not JSON');
  }
}

/** The driver's side: call() blocks the calling thread until the backend answers. */
export class CallClient {
  constructor(private readonly block: ControlBlock, private readonly timeoutMs = 10_000) {}

  call(method: string, args: unknown[]): unknown {
    const { block } = this;
    if (block.load(W.callState) !== IDLE) throw new BackendError(BackendErrorCode.BadCall, 'a call is already in progress');
    put(block, { method, args } satisfies Call);
    Atomics.add(block.words, W.callSeq, 1);
    block.store(W.callState, REQUEST);
    Atomics.notify(block.words, W.callState);
    const deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const state = block.load(W.callState);
      if (state === ANSWER) break;
      const left = deadline - performance.now();
      if (left <= 0 && Atomics.compareExchange(block.words, W.callState, REQUEST, IDLE) === REQUEST) {
        throw new BackendError(BackendErrorCode.Timeout, `${method}: no backend took the call within ${this.timeoutMs} ms`);
      }
      // A call a backend took is waited out: it answers, or its successor answers INTERRUPTED.
      Atomics.wait(block.words, W.callState, state, Math.max(left, 50));
    }
    let answer: Answer;
    try {
      answer = take(block) as Answer;
    } finally {
      block.store(W.callState, IDLE);
      Atomics.notify(block.words, W.callState);
    }
    if (typeof answer !== 'object' || answer === null) throw new BackendError(BackendErrorCode.BadCall, `${method}: the answer is not an object`);
    if (answer.ok) return answer.value;
    throw rebuildError(answer.error);
  }
}

/** Errors cross as name, code and message; the handler's table turns them back into their classes. */
export type ErrorRebuilder = (e: { name: string; code?: unknown; status?: unknown; message: string }) => Error | null;
let rebuilders: ErrorRebuilder[] = [];

/** Teach the client side to rebuild another error class from its wire form. */
export function registerErrorRebuilder(fn: ErrorRebuilder): void {
  rebuilders = [...rebuilders, fn];
}

/** An error's message as it crossed, without the "CODE: " its class put in front (the class puts it back). */
export function crossedMessage(e: { message: string }): string {
  return String(e.message).replace(/^[A-Z_]+: /, '');
}

/** Rebuild errors of class `name` whose code is one of `codes` (an enum of string codes) with `make`. */
export function registerCodedError<C extends string>(name: string, codes: Record<string, C>, make: (code: C, message: string) => Error): void {
  const known = new Set<unknown>(Object.values(codes));
  registerErrorRebuilder((e) => (e.name === name && known.has(e.code) ? make(e.code as C, crossedMessage(e)) : null));
}

registerCodedError('BackendError', BackendErrorCode, (code, message) => new BackendError(code, message));

function rebuildError(e: { name: string; code?: unknown; status?: unknown; message: string }): Error {
  for (const fn of rebuilders) {
    const err = fn(e);
    if (err !== null) return err;
  }
  return new Error(String(e.message));
}

/**
 * The backend's side: serve calls with `handle` until stop(). A call that throws is answered with
 * its error. `afterCall` runs after each call (given it, or null for one that did not parse) and
 * before its answer (the backend commits there).
 */
export class CallServer {
  private stopped = false;

  constructor(
    private readonly block: ControlBlock,
    private readonly handle: (call: Call) => unknown,
    private readonly afterCall: (call: Call | null) => void = () => {},
  ) {}

  /** Serve until stop(); resolves then. A call found RUNNING was its predecessor's: answered INTERRUPTED. */
  async serve(): Promise<void> {
    const { block } = this;
    if (block.load(W.callState) === RUNNING) {
      this.answer({ ok: false, error: { name: 'BackendError', code: BackendErrorCode.Interrupted, message: 'the device backend stopped during this call and was replaced; it may or may not have taken effect' } });
    }
    while (!this.stopped) {
      const state = block.load(W.callState);
      if (state === REQUEST && Atomics.compareExchange(block.words, W.callState, REQUEST, RUNNING) === REQUEST) {
        this.answer(this.run());
        continue;
      }
      const r = Atomics.waitAsync(block.words, W.callState, state, 1000);
      if (r.async) await r.value;
    }
  }

  stop(): void {
    this.stopped = true;
    Atomics.notify(this.block.words, W.callState);
  }

  private run(): Answer {
    let parsed: Call | null = null;
    try {
      const call = take(this.block) as Call;
      if (typeof call !== 'object' || call === null || typeof call.method !== 'string' || !Array.isArray(call.args)) {
        throw new BackendError(BackendErrorCode.BadCall, 'a call is { method, args[] }');
      }
      parsed = call;
      const value = this.handle(call);
      this.afterCall(call);
      return { ok: true, value: value ?? null };
    } catch (err) {
      const e = err as { name?: unknown; code?: unknown; status?: unknown; message?: unknown };
      try {
        this.afterCall(parsed);
      } catch {
        // The call failed anyway; its answer says why.
      }
      return { ok: false, error: { name: String(e?.name ?? 'Error'), code: e?.code, status: e?.status, message: String(e?.message ?? err) } };
    }
  }

  private answer(a: Answer): void {
    try {
      put(this.block, a);
    } catch (err) {
      put(this.block, { ok: false, error: { name: 'BackendError', code: BackendErrorCode.BadCall, message: (err as Error).message } } satisfies Answer);
    }
    this.block.store(W.callState, ANSWER);
    Atomics.notify(this.block.words, W.callState);
  }
}
