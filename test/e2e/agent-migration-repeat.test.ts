// Issue 5: VM1 moves back and forth between hosts A and C ten times while the checked traffic
// runs; at the end both memories match the model byte for byte, every WR completed exactly once,
// QPNs and keys unchanged, no QP in ERR — and the counters carried on across all ten moves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, E2E_WORKLOAD } from './agent-cluster.js';

describe('repeated live migration', { timeout: 90_000 }, () => {
  it('moves VM1 A -> C -> A ... ten times mid-traffic', async () => {
    const ip = (i: number) => `127.0.27.${16 + i}`;
    const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD });
    try {
      await cluster.start();
      let packetsBefore = 0;
      for (let i = 0; i < 10; i++) {
        await cluster.progress(50);
        const st = await cluster.vm1Host.status('vm1');
        await cluster.migrate(cluster.vm1At === 0 ? 2 : 0);
        const moved = await cluster.vm1Host.status('vm1');
        assert.ok(moved.workload!.opsCompleted >= st.workload!.opsCompleted, `move ${i}: the workload carried on`);
        const metrics = await cluster.vm1Host.metrics();
        const sent = metrics.find((m) => m.name === 'vrdma_device_packets_sent_total')!.values.find((v) => v.labels.vm === 'vm1')!.value;
        assert.ok(sent > packetsBefore, `move ${i}: the packet counter continued`);
        packetsBefore = sent;
      }
      assert.equal(cluster.vm1At, 0);
      assert.equal(cluster.reports.length, 10);
      await cluster.progress(50);
      await cluster.finishAndVerify();
    } finally {
      await cluster.stop();
    }
  });
});
