// A backend worker whose event loop stops turning: the pool's watchdog terminates it after
// hangMs without an answer to its ping, and the devices it ran come back from their journals on
// a live worker, with checked traffic completing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { connectPair, durableGuest } from '../../src/demo/durable-pair.js';

describe('durable backends and a hung worker', () => {
  let pool: BackendPool;
  before(() => {
    pool = new BackendPool({ workers: 2, debugOps: true, hangMs: 1000 });
  });
  after(async () => {
    await pool.close();
  });

  it('the watchdog terminates a stalled worker and its devices carry the traffic on elsewhere', async () => {
    const a = await durableGuest(pool, '127.0.35.8', 4);
    const b = await durableGuest(pool, '127.0.35.9', 4);
    await connectPair(a, b);
    let stalled = -1;
    const report = await runCheckedTraffic(a, b, {
      ops: 120, bytes: 2048, window: 16, timeoutMs: 60_000,
      onProgress: (done) => {
        if (stalled < 0 && done > 0.3) {
          stalled = a.device.threadId;
          a.device.stall(120_000);
        }
      },
    });
    assert.equal(report.sendCompletions, 4 * 120);
    await a.device.settled();
    const silent = pool.hung.get(stalled);
    assert.ok(silent !== undefined && silent >= 1000, `the watchdog terminated thread ${stalled} (silent ${silent} ms)`);
    assert.ok(a.device.runs.some((r) => r.threadId === stalled && r.ended !== null && r.ended !== 'closed'), 'the stalled run ended with its worker');
    assert.notEqual(a.device.threadId, stalled);
    assert.equal(a.device.lost, null);
    await Promise.all([a.device.close(), b.device.close()]);
  });
});
