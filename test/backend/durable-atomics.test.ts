// Atomics through durable backends. A fetch-add's effect on memory cannot be redone, so the
// backend commits an intent before executing one: a stream of fetch-adds through worker deaths
// runs each exactly once (distinct old values, the counter equal to their number) — or, if a
// backend came back from an intent entry, that QP failed cleanly (ERR) and the counter is
// consistent with what completed. A worker ended exactly between an intent and its atomic gives
// the clean failure every time, and the device's other QPs carry on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import { DATA, IOVA, type DurableGuest, connectPair, durableGuest } from '../../src/demo/durable-pair.js';
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

  it('fetch-adds through two worker deaths run exactly once, or their QP fails cleanly from an intent', async () => {
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
    const ok = cqes.filter((c) => c.status === CqeStatus.Success);
    const olds = ok.map((c) => a.device.dm.guest.readU64(gpa(DATA + OLDS + 8 * Number(c.wrId)))).sort((x, y) => x - y);
    assert.equal(new Set(olds).size, olds.length, 'no fetch-add saw the same old value twice (none ran twice)');
    const counter = b.device.dm.guest.readU64(gpa(DATA + COUNTER));
    const inDoubt = b.device.runs.flatMap((r) => r.inDoubt);
    if (inDoubt.length === 0) {
      assert.equal(ok.length, N, `every fetch-add succeeded: ${JSON.stringify(cqes.filter((c) => c.status !== CqeStatus.Success).slice(0, 3))}`);
      assert.equal(counter, N);
      assert.deepEqual(olds, Array.from({ length: N }, (_, i) => i));
    } else {
      // The QP failed from an intent: what completed ran once; the one in doubt ran at most once.
      assert.deepEqual(inDoubt, [b.qps[0].qpn]);
      assert.ok(counter === ok.length || counter === ok.length + 1, `counter ${counter} against ${ok.length} successes`);
      assert.ok(cqes.every((c) => c.status === CqeStatus.Success || c.status === CqeStatus.RetryExcErr || c.status === CqeStatus.WrFlushErr));
    }
    await Promise.all([a.device.close(), b.device.close()]);
  });

  it('a worker ended between an intent and its atomic: that QP goes to ERR, the peer\'s fetch-add fails, other QPs carry on', async () => {
    const a = await durableGuest(pool, '127.0.35.18', 2);
    const b = await durableGuest(pool, '127.0.35.19', 2);
    await connectPair(a, b);
    b.device.dm.guest.fill(gpa(DATA + COUNTER), 8, 0);
    b.device.crashAtNextAtomic();
    // Let the op reach the worker before the atomic does.
    await b.device.counters();
    a.qps[0].postSend([0, 1, 2].map((i) => ({
      wrId: BigInt(i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: IOVA + COUNTER, rkey: b.rkey, compareAdd: 5n,
      sgList: [{ addr: IOVA + OLDS + 8 * i, length: 8, lkey: a.lkey }],
    })));
    const failed = await waitForCompletions(a.cq, 3, 30_000);
    assert.deepEqual(failed.map((c) => [c.wrId, c.status]), [[0n, CqeStatus.RetryExcErr], [1n, CqeStatus.WrFlushErr], [2n, CqeStatus.WrFlushErr]]);
    await b.device.settled();
    const run = b.device.runs.at(-1);
    assert.equal(run?.mode, 'restore');
    assert.deepEqual(run?.inDoubt, [b.qps[0].qpn]);
    assert.equal((await b.qps[0].query()).qpState, QpState.Err);
    assert.equal(b.device.dm.guest.readU64(gpa(DATA + COUNTER)), 0, 'the atomic never ran (the device could not know that)');
    // QP 1 of the same devices still moves data.
    a.device.dm.guest.fill(gpa(DATA), 4096, 0x5a);
    a.qps[1].postSend([{ wrId: 9n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 8192, rkey: b.rkey, sgList: [{ addr: IOVA, length: 4096, lkey: a.lkey }] }]);
    const [w] = await waitForCompletions(a.cq, 1);
    assert.deepEqual([w.wrId, w.status], [9n, CqeStatus.Success]);
    assert.ok(b.device.dm.guest.slice(gpa(DATA + 8192), 4096).every((x) => x === 0x5a));
    await Promise.all([a.device.close(), b.device.close()]);
  });
});
