// Atomics through durable backends. A fetch-add's effect on memory cannot be redone, so the
// backend commits an intent (target word, value before and after) before executing one, and a
// backend restored from that entry settles it from the word: a stream of fetch-adds through
// worker deaths runs each exactly once (distinct old values, the counter equal to their number);
// a worker ended right before or right after an atomic ran settles it as not run or run, every
// time; and a word something else changed meanwhile puts that QP in ERR (a clean failure) while
// the device's other QPs carry on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { DATA, IOVA, type DurableGuest, connectPair, durableGuest, withPool } from '../../src/demo/durable-pair.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { gpa } from '../../src/memory/gpa.js';
import { QpState } from '../../src/nic/qp-state.js';

const COUNTER = 64 * 1024;
const OLDS = 128 * 1024;

/** Keep `window` fetch-adds of 1 in flight on QP 0 until `n` were posted; returns every completion. */
async function fetchAdds(a: DurableGuest, b: DurableGuest, n: number, window: number, onProgress: (done: number) => Promise<void>): Promise<Cqe[]> {
  const got: Cqe[] = [];
  let posted = 0;
  const deadline = Date.now() + 60_000;
  while (got.length < n) {
    while (posted < n && posted - got.length < window) {
      a.qps[0].postSend([{
        wrId: BigInt(posted), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: IOVA + COUNTER, rkey: b.rkey, compareAdd: 1n,
        sgList: [{ addr: IOVA + OLDS + 8 * posted, length: 8, lkey: a.lkey }],
      }]);
      posted++;
    }
    got.push(...a.cq.poll());
    if (Date.now() > deadline) assert.fail(`${got.length} of ${n} fetch-adds completed`);
    await onProgress(got.length / n);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return got;
}

describe('atomics through durable backends', () => {
  let pool: BackendPool;
  before(() => {
    pool = new BackendPool({ workers: 2, debugOps: true });
  });
  after(async () => {
    await pool.close();
  });

  it('fetch-adds through two worker deaths run exactly once each', async () => {
    const a = await durableGuest(pool, '127.0.35.16');
    const b = await durableGuest(pool, '127.0.35.17');
    await connectPair(a, b);
    const N = 400;
    const kills: number[] = [];
    const cqes = await fetchAdds(a, b, N, 16, async (done) => {
      if (kills.length === 0 && done > 0.3) kills.push(await pool.terminateWorkerOf(b.device));
      else if (kills.length === 1 && done > 0.6) {
        await b.device.settled();
        kills.push(await pool.terminateWorkerOf(a.device));
      }
    });
    await Promise.all([a.device.settled(), b.device.settled()]);
    assert.equal(kills.length, 2);
    assert.deepEqual(cqes.filter((c) => c.status !== CqeStatus.Success), [], 'every fetch-add succeeded');
    const olds = cqes.map((c) => a.device.dm.guest.readU64(gpa(DATA + OLDS + 8 * Number(c.wrId)))).sort((x, y) => x - y);
    assert.deepEqual(olds, Array.from({ length: N }, (_, i) => i), 'each saw its own old value: none ran twice, none was lost');
    assert.equal(b.device.dm.guest.readU64(gpa(DATA + COUNTER)), N);
    assert.deepEqual(b.device.runs.flatMap((r) => r.inDoubt), []);
    await Promise.all([a.device.close(), b.device.close()]);
  });

  for (const after of [false, true]) {
    it(`a worker ended ${after ? 'right after an atomic ran (its result not committed)' : 'between an intent and its atomic'}: settled as ${after ? 'run' : 'not run'}, executed once`, async () => {
      const a = await durableGuest(pool, after ? '127.0.35.20' : '127.0.35.18');
      const b = await durableGuest(pool, after ? '127.0.35.21' : '127.0.35.19');
      await connectPair(a, b);
      b.device.crashAtNextAtomic(after);
      await b.device.counters(); // the op has reached the worker
      postFetchAdds(a, b, 3, 5n);
      const done = await waitForCompletions(a.cq, 3, 30_000);
      assert.deepEqual(done.map((c) => [c.wrId, c.status]), [[0n, CqeStatus.Success], [1n, CqeStatus.Success], [2n, CqeStatus.Success]]);
      await b.device.settled();
      assert.deepEqual(b.device.runs.at(-1)?.atomic, { qpn: b.qps[0].qpn, outcome: after ? 'ran' : 'not-run' });
      assert.equal(b.device.dm.guest.readU64(gpa(DATA + COUNTER)), 15);
      assert.deepEqual([0, 1, 2].map((i) => a.device.dm.guest.readU64(gpa(DATA + OLDS + 8 * i))), [0, 5, 10]);
      await Promise.all([a.device.close(), b.device.close()]);
    });
  }

  it('an atomic whose word something else changed before the restart: that QP goes to ERR, the peer\'s fetch-add fails, other QPs carry on', async () => {
    // The sockets in the workers: this thread must not turn its event loop between the atomic and
    // the overwrite below, so no packet may need it to reach b. One fetch-add, so that nothing
    // arrives at b's socket as its worker ends (see BackendPool's `socket` option).
    const a = await durableGuest(pool, '127.0.35.22', 2, { socket: 'worker' });
    const b = await durableGuest(pool, '127.0.35.23', 2, { socket: 'worker' });
    await connectPair(a, b);
    b.device.crashAtNextAtomic(true);
    await b.device.counters();
    postFetchAdds(a, b, 1, 5n);
    // The atomic runs in b's worker, which then ends before committing its result. This thread
    // sees the word change and overwrites it before it turns its event loop again — before it
    // even learns that the worker died, so before any new backend reads the word.
    const deadline = Date.now() + 10_000;
    while (b.device.dm.guest.readU64(gpa(DATA + COUNTER)) !== 5) if (Date.now() > deadline) assert.fail('the atomic did not run');
    b.device.dm.guest.writeU64(gpa(DATA + COUNTER), 1000);
    const failed = await waitForCompletions(a.cq, 1, 30_000);
    assert.deepEqual(failed.map((c) => [c.wrId, c.status]), [[0n, CqeStatus.RetryExcErr]]);
    await b.device.settled();
    const run = b.device.runs.at(-1);
    assert.deepEqual(run?.atomic, { qpn: b.qps[0].qpn, outcome: 'in-doubt' });
    assert.deepEqual(run?.inDoubt, [b.qps[0].qpn]);
    assert.equal((await b.qps[0].query()).qpState, QpState.Err);
    // QP 1 of the same devices still moves data.
    a.device.dm.guest.fill(gpa(DATA), 4096, 0x5a);
    a.qps[1].postSend([{ wrId: 9n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 8192, rkey: b.rkey, sgList: [{ addr: IOVA, length: 4096, lkey: a.lkey }] }]);
    const [w] = await waitForCompletions(a.cq, 1);
    assert.deepEqual([w.wrId, w.status], [9n, CqeStatus.Success]);
    assert.ok(b.device.dm.guest.slice(gpa(DATA + 8192), 4096).every((x) => x === 0x5a));
    await Promise.all([a.device.close(), b.device.close()]);
  });
});

function postFetchAdds(a: DurableGuest, b: DurableGuest, n: number, add: bigint): void {
  a.qps[0].postSend(Array.from({ length: n }, (_, i) => ({
    wrId: BigInt(i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: IOVA + COUNTER, rkey: b.rkey, compareAdd: add,
    sgList: [{ addr: IOVA + OLDS + 8 * i, length: 8, lkey: a.lkey }],
  })));
}

describe('control commands through a backend\'s death', () => {
  // A device that published the answer before committing would answer the command twice, and the
  // guest's next commands wait for answers that went to the wrong chain: bounded here.
  it('a command executed but not committed when the worker ended runs again on the restored device, and the guest gets one answer', { timeout: 60_000 }, async () => {
    await withPool({ workers: 2, debugOps: true }, async (pool) => {
      const a = await durableGuest(pool, '127.0.35.24');
      const b = await durableGuest(pool, '127.0.35.25');
      a.device.crashAtNextCommit();
      await a.device.counters(); // the op has reached the worker
      // The device executes CREATE_QP, then its worker ends before the commit that would publish the answer.
      const qp = await a.guest.createQp({ pd: a.pd, type: QpTypeCode.RC, sendCq: a.cq.cqn, recvCq: a.cq.cqn, cap: { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
      await a.device.settled();
      assert.equal(a.device.restarts, 1);
      // The QP the guest got is the one the restored device holds, and it works.
      a.qps[0] = qp;
      await connectPair(a, b);
      await runCheckedTraffic(a, b, { ops: 20, bytes: 1024, window: 8 });
      await Promise.all([a.device.close(), b.device.close()]);
    });
  });
});
