// Host processes whose VMs' devices run as durable backends (`vrdma host --durable`): the guests
// and the host agent on each host's main thread, every device in a worker of the host's backend
// pool, its socket on the main thread (the agent's per-QP counters and loss switch over it).
// Three hosts, real UDP, the checked workload both ways on 8 RC QPs: the worker running VM1's
// device is terminated mid-traffic (the device comes back from its journal), then VM1 moves from
// A to C mid-traffic; both memories match the model byte for byte, every WR completed exactly
// once, no QP is in ERR, and the hosts' metrics count the QPs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, E2E_WORKLOAD } from './agent-cluster.js';

describe('hosts running durable device backends', { timeout: 120_000 }, () => {
  it('survive the death of a device worker and move VM1 A -> C mid-traffic', async () => {
    const ip = (i: number) => `127.0.27.${71 + i}`;
    const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD, workers: 2, durable: true });
    try {
      await cluster.start();
      const [A, B, C] = cluster.hosts;
      assert.equal((await A.ping()).durable, true);
      await cluster.progress(150);
      const dead = await A.terminateWorkerOf('vm1');
      assert.ok(dead > 0);
      await cluster.progress(150);
      const report = await cluster.migrate(2);
      assert.ok(report.rounds.length >= 2 && report.rounds.at(-1)!.final);
      assert.equal(report.blackout.perQp.length, 8);
      assert.ok(report.blackout.perQp.every((q) => q.ms !== null), `every QP completed after the move: ${JSON.stringify(report.blackout)}`);
      assert.deepEqual((await A.ping()).vms, [], 'A holds nothing after the move');
      assert.deepEqual((await C.ping()).vms, ['vm1']);
      await cluster.progress(150);
      const done = await cluster.finishAndVerify();
      assert.ok(done.ops > 600);
      const metrics = await B.metrics();
      assert.ok(metrics.some((m) => m.name === 'vrdma_qp_packets_sent_total' && m.values.length === 8), "B counts VM2's 8 QPs");
    } finally {
      await cluster.stop();
    }
  });
});
