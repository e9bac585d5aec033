// Many QPs through durable backends while their workers keep dying: 16 RC QP pairs with work
// posted on all of them at once, and during the traffic each side's worker terminated, then a
// worker ended by an uncaught error. Every completion on every QP is checked in posting order as
// it arrives (none lost, repeated or reordered) and every byte at the receiver at the end. Also:
// a second backend for a device that runs is refused by the device's ownership word.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { connectPair, durableGuest } from '../../src/demo/durable-pair.js';

describe('durable backends under many QPs and repeated worker deaths', () => {
  let pool: BackendPool;
  before(() => {
    pool = new BackendPool({ workers: 2, debugOps: true });
  });
  after(async () => {
    await pool.close();
  });

  it('16 QP pairs, concurrent posts, three workers terminated and one failing: no completion lost, repeated or reordered', async () => {
    const a = await durableGuest(pool, '127.0.35.5', 16);
    const b = await durableGuest(pool, '127.0.35.6', 16);
    await connectPair(a, b);
    const events: string[] = [];
    const plan: [number, () => Promise<unknown>, string][] = [
      [0.15, () => pool.terminateWorkerOf(a.device), 'terminate the sender\'s worker'],
      [0.35, () => pool.terminateWorkerOf(b.device), 'terminate the receiver\'s worker'],
      [0.55, async () => a.device.injectFault(), 'an uncaught error in the sender\'s worker'],
      [0.75, () => pool.terminateWorkerOf(b.device), 'terminate the receiver\'s worker again'],
    ];
    const report = await runCheckedTraffic(a, b, {
      ops: 100, bytes: 2048, window: 16, timeoutMs: 120_000,
      onProgress: async (done) => {
        const next = plan[events.length];
        if (next === undefined || done < next[0]) return;
        // Wait for the previous restart, so each disruption meets a device that runs.
        await Promise.all([a.device.settled(), b.device.settled()]);
        events.push(next[2]);
        await next[1]();
      },
    });
    assert.equal(report.sendCompletions, 16 * 100);
    assert.equal(events.length, plan.length, `all disruptions happened: ${events.join('; ')}`);
    await Promise.all([a.device.settled(), b.device.settled()]);
    assert.equal(a.device.lost, null);
    assert.equal(b.device.lost, null);
    assert.ok(a.device.restarts >= 2 && b.device.restarts >= 2, `restarts: ${a.device.restarts}, ${b.device.restarts}`);
    assert.ok(a.device.runs.some((r) => r.ended?.includes('injected fault')), `a run of the sender ended with the fault: ${JSON.stringify(a.device.runs)}`);
    await Promise.all([a.device.close(), b.device.close()]);
  });

  it('a second backend for a device that runs is refused by its ownership word', async () => {
    const d = await pool.open({ ip: '127.0.35.7' });
    const spec = { ip: d.ip, memory: d.dm.memory, layout: d.dm.layout, control: d.control.buffer };
    await assert.rejects(pool.runTask(spec, 'restore'), (err: Error) => {
      assert.ok(err instanceof BackendError || err.message.includes(BackendErrorCode.NotOwner), err.message);
      assert.match(err.message, /NOT_OWNER: the device is owned by thread \d+/);
      return true;
    });
    assert.equal(d.control.owner, d.threadId, 'the running backend keeps the device');
    await d.close();
  });
});
