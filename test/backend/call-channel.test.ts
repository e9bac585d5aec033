// The call channel in the control block. The server runs in this thread with the client's side
// played by hand on the block's words (hostile requests included); the real, blocking CallClient
// runs here against a server in a worker thread (call-server-worker.ts), including its timeout.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { type Call, CallClient, CallServer } from '../../src/backend/call-channel.js';
import { CALL_BYTES, ControlBlock, W } from '../../src/backend/control-block.js';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';

const IDLE = 0;
const REQUEST = 1;
const ANSWER = 2;
const RUNNING = 3;

interface WireAnswer {
  ok: boolean;
  value?: unknown;
  error?: { name: string; code?: string; message: string };
}

/** Play the driver: put raw request bytes (and a length, by default theirs) in the call area. */
function request(block: ControlBlock, body: string | object, length?: number): void {
  const bytes = new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
  block.bytes.set(bytes, block.callOff);
  block.store(W.callLength, length ?? bytes.length);
  block.store(W.callState, REQUEST);
  Atomics.notify(block.words, W.callState);
}

/** Wait for the server's answer, read it as plain JSON (tags left as they are) and go back to IDLE. */
async function answer(block: ControlBlock): Promise<WireAnswer> {
  const deadline = Date.now() + 2000;
  while (block.load(W.callState) !== ANSWER) {
    if (Date.now() > deadline) throw new Error(`no answer; call state ${block.load(W.callState)}`);
    await new Promise((r) => setImmediate(r));
  }
  const len = block.load(W.callLength);
  assert.ok(len > 0 && len <= CALL_BYTES, `answer length ${len}`);
  const text = new TextDecoder().decode(block.bytes.slice(block.callOff, block.callOff + len));
  block.store(W.callState, IDLE);
  Atomics.notify(block.words, W.callState);
  return JSON.parse(text) as WireAnswer;
}

/** A block with a server serving `handle` in this thread; stop() ends it and waits for serve(). */
function served(handle: (call: Call) => unknown, prepare?: (block: ControlBlock) => void) {
  const block = ControlBlock.create(4096);
  prepare?.(block);
  const server = new CallServer(block, handle);
  const serving = server.serve();
  return {
    block,
    stop: async () => {
      server.stop();
      await serving;
    },
  };
}

function assertBadCall(a: WireAnswer, what: string): void {
  assert.equal(a.ok, false, what);
  assert.equal(a.error?.name, 'BackendError', what);
  assert.equal(a.error?.code, BackendErrorCode.BadCall, what);
}

describe('call server (client played by hand)', () => {
  it('answers a call with its value, and a handler returning nothing with null', async () => {
    const calls: Call[] = [];
    const { block, stop } = served((call) => {
      calls.push(call);
      return call.method === 'add' ? (call.args[0] as number) + (call.args[1] as number) : undefined;
    });
    request(block, { method: 'add', args: [2, 40] });
    assert.deepEqual(await answer(block), { ok: true, value: 42 });
    request(block, { method: 'nothing', args: [] });
    assert.deepEqual(await answer(block), { ok: true, value: null });
    assert.deepEqual(calls, [{ method: 'add', args: [2, 40] }, { method: 'nothing', args: [] }]);
    await stop();
  });

  it('answers a throwing handler with the error, then serves the next call', async () => {
    const { block, stop } = served((call) => {
      if (call.method === 'fail') throw new TypeError('bad thing');
      if (call.method === 'refuse') throw new BackendError(BackendErrorCode.NotOwner, 'gone');
      if (call.method === 'throwString') throw 'just a string';
      return 'fine';
    });
    request(block, { method: 'fail', args: [] });
    const a = await answer(block);
    assert.equal(a.ok, false);
    assert.equal(a.error?.name, 'TypeError');
    assert.equal(a.error?.message, 'bad thing');
    request(block, { method: 'refuse', args: [] });
    const b = await answer(block);
    assert.deepEqual([b.error?.name, b.error?.code], ['BackendError', 'NOT_OWNER']);
    request(block, { method: 'throwString', args: [] });
    const c = await answer(block);
    assert.deepEqual([c.ok, c.error?.name, c.error?.message], [false, 'Error', 'just a string']);
    request(block, { method: 'ok', args: [] });
    assert.deepEqual(await answer(block), { ok: true, value: 'fine' });
    await stop();
  });

  it('answers malformed requests BAD_CALL without calling the handler, and keeps serving', async () => {
    let handled = 0;
    const { block, stop } = served(() => ++handled);
    const hostile: [string, string | object, number?][] = [
      ['not JSON', '{"method": "add", args'],
      ['binary garbage', '\u0000\u00ff\u0001'],
      ['JSON null', 'null'],
      ['a JSON number', '12'],
      ['an array', '[1, 2]'],
      ['no args', { method: 'add' }],
      ['args not an array', { method: 'add', args: { 0: 1 } }],
      ['method not a string', { method: 7, args: [] }],
      ['length 0', { method: 'add', args: [] }, 0],
      ['negative length', { method: 'add', args: [] }, -1],
      ['length above the call area', { method: 'add', args: [] }, CALL_BYTES + 1],
      ['length cutting the JSON short', { method: 'add', args: [1, 2] }, 10],
    ];
    for (const [what, body, length] of hostile) {
      request(block, body, length);
      assertBadCall(await answer(block), what);
    }
    assert.equal(handled, 0);
    request(block, { method: 'x', args: [] });
    assert.deepEqual(await answer(block), { ok: true, value: 1 });
    await stop();
  });

  it('answers an answer too large for the call area BAD_CALL, and keeps serving', async () => {
    const { block, stop } = served((call) => (call.method === 'big' ? 'x'.repeat(CALL_BYTES) : 'small'));
    request(block, { method: 'big', args: [] });
    assertBadCall(await answer(block), 'a 64 KiB string answer');
    request(block, { method: 'small', args: [] });
    assert.deepEqual(await answer(block), { ok: true, value: 'small' });
    await stop();
  });

  it('a call found RUNNING when serving starts is answered INTERRUPTED without running it', async () => {
    let handled = 0;
    const { block, stop } = served(() => ++handled, (b) => {
      request(b, { method: 'half-done', args: [] });
      b.store(W.callState, RUNNING);
    });
    assert.equal(block.load(W.callState), ANSWER, 'answered at once');
    const a = await answer(block);
    assert.deepEqual([a.ok, a.error?.name, a.error?.code], [false, 'BackendError', 'INTERRUPTED']);
    assert.equal(handled, 0);
    request(block, { method: 'next', args: [] });
    assert.deepEqual(await answer(block), { ok: true, value: 1 });
    await stop();
  });

  it('a call already waiting when serving starts is run', async () => {
    const { block, stop } = served((call) => call.method, (b) => request(b, { method: 'early', args: [] }));
    assert.deepEqual(await answer(block), { ok: true, value: 'early' });
    await stop();
  });

  it('bigints and byte arrays cross tagged in both directions; look-alike tags that do not parse stay objects', async () => {
    const seen: unknown[][] = [];
    const { block, stop } = served((call) => {
      seen.push(call.args);
      return { n: -(2n ** 64n) - 1n, bytes: Uint8Array.of(0, 255, 7), list: [1n] };
    });
    request(block, { method: 'echo', args: [{ $bigint: '18446744073709551617' }, { $bytes: 'AQID' }, { $bigint: '12x' }, { $bigint: '1'.repeat(41) }, { $bigint: 5 }] });
    const a = await answer(block);
    assert.deepEqual(seen, [[2n ** 64n + 1n, Uint8Array.of(1, 2, 3), { $bigint: '12x' }, { $bigint: '1'.repeat(41) }, { $bigint: 5 }]]);
    assert.deepEqual(a, { ok: true, value: { n: { $bigint: '-18446744073709551617' }, bytes: { $bytes: 'AP8H' }, list: [{ $bigint: '1' }] } });
    await stop();
  });

  it('stop() ends serve() while it waits', async () => {
    const { block, stop } = served(() => 1);
    await stop();
    request(block, { method: 'late', args: [] });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(block.load(W.callState), REQUEST, 'a stopped server takes no call');
  });
});

async function startWorker(block: ControlBlock): Promise<Worker> {
  const worker = new Worker(new URL('./call-server-worker.js', import.meta.url), { workerData: { buffer: block.buffer } });
  const [m] = (await once(worker, 'message')) as [unknown];
  assert.equal(m, 'ready');
  return worker;
}

describe('call client against a server in a worker', () => {
  let block: ControlBlock;
  let worker: Worker;
  before(async () => {
    block = ControlBlock.create(4096);
    worker = await startWorker(block);
  });
  after(async () => {
    await worker.terminate();
  });

  it('returns what the server answers, call after call', () => {
    const client = new CallClient(block, 5000);
    assert.equal(client.call('add', [2, 3]), 5);
    assert.equal(client.call('add', [-1, 1]), 0);
    assert.deepEqual(client.call('echo', [{ a: [1, 'two', null] }]), { a: [1, 'two', null] });
    assert.equal(client.call('echo', []), null, 'undefined comes back as null');
    assert.equal(block.load(W.callState), IDLE);
    assert.equal(block.load(W.callSeq), 4, 'each call counts in the call sequence');
  });

  it('rethrows the server error with its message; a BackendError keeps its class and code', () => {
    const client = new CallClient(block, 5000);
    assert.throws(() => client.call('fail', []), (e: unknown) => e instanceof Error && !(e instanceof BackendError) && e.message === 'boom');
    assert.throws(() => client.call('nope', []), { message: 'no method nope' });
    assert.throws(() => client.call('refuse', []), (e: unknown) => e instanceof BackendError && e.code === BackendErrorCode.NotOwner && e.message === 'NOT_OWNER: not yours');
    assert.equal(client.call('add', [1, 1]), 2, 'the server still serves');
  });

  it('round trips bigints and bytes', () => {
    const client = new CallClient(block, 5000);
    const value = { big: 2n ** 100n, neg: -5n, bytes: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), empty: new Uint8Array(0) };
    assert.deepEqual(client.call('echo', [value]), value);
    assert.equal(client.call('echo', [0n]), 0n);
  });

  it('refuses a call while another is in progress, and a call too large for the area, without disturbing the channel', () => {
    const client = new CallClient(block, 5000);
    block.store(W.callState, ANSWER);
    assert.throws(() => client.call('add', [1, 2]), (e: unknown) => e instanceof BackendError && e.code === BackendErrorCode.BadCall);
    block.store(W.callState, IDLE);
    assert.throws(() => client.call('echo', ['x'.repeat(CALL_BYTES)]), (e: unknown) => e instanceof BackendError && e.code === BackendErrorCode.BadCall);
    assert.equal(block.load(W.callState), IDLE);
    assert.equal(client.call('add', [1, 2]), 3);
  });
});

describe('call client without a serving backend', () => {
  it('times out with TIMEOUT after timeoutMs and withdraws the call', async () => {
    const block = ControlBlock.create(4096);
    const worker = await startWorker(block);
    try {
      const client = new CallClient(block, 200);
      assert.equal(client.call('add', [1, 2]), 3);
      worker.postMessage('stop');
      const [m] = (await once(worker, 'message')) as [unknown];
      assert.equal(m, 'stopped');
      const t0 = performance.now();
      assert.throws(() => client.call('add', [1, 2]), (e: unknown) => e instanceof BackendError && e.code === BackendErrorCode.Timeout);
      const took = performance.now() - t0;
      assert.ok(took >= 190 && took < 1500, `timed out after ${took.toFixed(0)} ms`);
      assert.equal(block.load(W.callState), IDLE, 'the call is withdrawn');
      // A later backend finds no stale request to run.
      let handled = 0;
      const server = new CallServer(block, () => ++handled);
      const serving = server.serve();
      await new Promise((r) => setTimeout(r, 20));
      server.stop();
      await serving;
      assert.equal(handled, 0);
    } finally {
      await worker.terminate();
    }
  });
});
