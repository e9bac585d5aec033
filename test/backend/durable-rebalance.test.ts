// Moving durable devices between workers while they carry traffic: after a worker dies its
// devices come back on the survivor, and rebalance() moves some to the replacement thread (each
// move a clean stop, its last turn committed, and a start from the journal elsewhere). Two
// pairs' checked traffic runs throughout and completes, every completion in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { connectPair, durableGuest } from '../../src/demo/durable-pair.js';

describe('durable devices moved between workers', () => {
  let pool: BackendPool;
  before(() => {
    pool = new BackendPool({ workers: 2 });
  });
  after(async () => {
    await pool.close();
  });

  it('a dead worker\'s devices crowd the survivor, and rebalance() spreads them to the replacement mid-traffic', async () => {
    const a1 = await durableGuest(pool, '127.0.35.12', 4);
    const b1 = await durableGuest(pool, '127.0.35.13', 4);
    const a2 = await durableGuest(pool, '127.0.35.14', 4);
    const b2 = await durableGuest(pool, '127.0.35.15', 4);
    await connectPair(a1, b1);
    await connectPair(a2, b2);
    const devices = [a1, b1, a2, b2].map((g) => g.device);
    const threadsOf = () => new Set(devices.map((d) => d.threadId));
    assert.equal(threadsOf().size, 2, 'the four devices start spread over both workers');
    let killed = -1;
    let moves: { device: string; from: number; to: number }[] | null = null;
    let crowded = 0;
    const step = async (done: number) => {
      if (killed < 0 && done > 0.2) {
        killed = await pool.terminateWorkerOf(a1.device);
      } else if (killed >= 0 && moves === null && done > 0.5) {
        moves = [];
        await Promise.all(devices.map((d) => d.settled()));
        crowded = threadsOf().size;
        moves = await pool.rebalance();
      }
    };
    const opts = { ops: 100, bytes: 2048, window: 16, timeoutMs: 60_000 };
    const [r1, r2] = await Promise.all([runCheckedTraffic(a1, b1, { ...opts, onProgress: step }), runCheckedTraffic(a2, b2, opts)]);
    assert.equal(r1.sendCompletions + r2.sendCompletions, 2 * 4 * 100);
    assert.equal(crowded, 1, 'after the kill every device ran on the survivor');
    const done = moves as { device: string; from: number; to: number }[] | null;
    assert.ok(done !== null && done.length === 2, `rebalance moved two devices: ${JSON.stringify(done)}`);
    for (const m of done) assert.notEqual(m.from, m.to);
    await Promise.all(devices.map((d) => d.settled()));
    assert.equal(threadsOf().size, 2, 'spread over two workers again');
    assert.ok(!threadsOf().has(killed));
    for (const d of devices) assert.equal(d.lost, null);
    await Promise.all(devices.map((d) => d.close()));
  });
});
