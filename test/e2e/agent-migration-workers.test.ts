// Issue 6's end-to-end check of the host pool: the same live migration as agent-migration.test.ts
// (three host processes, real UDP, the checked workload both ways on 8 RC QPs, VM1 moved from A to
// C mid-traffic), with every host spreading its VMs over 1, 2 and 4 worker threads. The VMs' whole
// data path runs in the workers; the migration's TCP stream leaves from one worker and arrives in
// another. With 2 workers the hosts' main threads hold the VMs' sockets (socket 'main'), so VM1's
// address moves from A's main thread to C's. The result is checked as before: both memories match the model byte for byte,
// every WR completed exactly once, QPNs and keys are unchanged, no QP is in ERR.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, E2E_WORKLOAD } from './agent-cluster.js';

describe('live migration between hosts whose VMs run in worker threads', { timeout: 90_000 }, () => {
  for (const [workers, base] of [[1, 31], [2, 41], [4, 51]] as const) {
    it(`moves VM1 A -> C mid-traffic with ${workers} worker${workers > 1 ? 's' : ''} per host`, async () => {
      const ip = (i: number) => `127.0.27.${base + i}`;
      const mainSockets = workers === 2;
      const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD, workers, mainSockets });
      try {
        await cluster.start();
        const [A, B, C] = cluster.hosts;
        assert.equal((await A.ping()).workers, workers);
        const before = await A.placement();
        assert.equal(before.threadIds.length, workers, 'the pool runs its worker count');
        assert.ok(before.threadIds.includes(before.vms.vm1), `VM1 runs in one of A's workers: ${JSON.stringify(before)}`);
        assert.deepEqual(before.mainSockets, mainSockets ? [ip(3)] : [], "A's main thread holds VM1's socket only with socket 'main'");
        await cluster.progress(200);
        const report = await cluster.migrate(2);
        assert.ok(report.rounds.length >= 2 && report.rounds.at(-1)!.final);
        assert.deepEqual((await A.placement()).vms, {}, 'A holds nothing after the move');
        // A, empty now, can be drained (it takes nothing new); C has one VM, which is even.
        await A.drainHost();
        await assert.rejects(A.openVm({ name: 'vm9', ip: ip(9) }), /host A is draining/);
        assert.deepEqual(await C.rebalance(), { moves: [], refused: [] });
        const after = await C.placement();
        assert.ok(after.threadIds.includes(after.vms.vm1), `VM1 runs in one of C's workers: ${JSON.stringify(after)}`);
        assert.deepEqual(after.mainSockets, mainSockets ? [ip(3)] : [], "VM1's address moved to C's main thread");
        assert.deepEqual((await A.placement()).mainSockets, [], 'A released it');
        await cluster.progress(200);
        const done = await cluster.finishAndVerify();
        assert.ok(done.ops > 800);
        const metrics = await A.metrics();
        const phase = metrics.find((m) => m.name === 'vrdma_migration_phase');
        assert.ok(phase?.values.some((v) => v.labels.vm === 'vm1' && v.labels.phase === 'migrated-out' && v.value === 1), 'A\'s metrics say VM1 left');
        assert.ok((await B.metrics()).some((m) => m.name === 'vrdma_qp_packets_sent_total' && m.values.length === 8), 'B counts VM2\'s 8 QPs');
      } finally {
        await cluster.stop();
      }
    });
  }

  it('refuses an incoming VM whose name another worker of the destination holds', async () => {
    const ip = (i: number) => `127.0.27.${61 + i}`;
    const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD, workers: 2 });
    try {
      await cluster.start();
      await cluster.refusedThenMoved(ip(5));
    } finally {
      await cluster.stop();
    }
  });
});
