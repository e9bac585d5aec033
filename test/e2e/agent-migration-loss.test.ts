// Issue 5: VM1 moves A -> C mid-traffic while 5% of the packets VM1 and its peer VM2 send are
// lost, switched on just before the migration starts and off once VM1 runs on C. Loss and the
// address move together are recovered by retransmission: both memories match the model byte for
// byte, every WR completed exactly once, QPNs and keys unchanged, no QP in ERR.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, E2E_WORKLOAD } from './agent-cluster.js';

describe('live migration with loss', { timeout: 60_000 }, () => {
  it('recovers 5% loss during the switchover', async () => {
    const ip = (i: number) => `127.0.27.${11 + i}`;
    const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD, lossy: { drop: 0.05, seed: 5 } });
    try {
      await cluster.start();
      await cluster.progress(200);
      const [A, B, C] = cluster.hosts;
      await cluster.migrate(2, {}, {
        before: async () => {
          await Promise.all([A.setLoss('vm1', true), B.setLoss('vm2', true)]);
        },
        after: async () => {
          // VM1's loss switch moved with it (still on): it is C's VM now.
          await Promise.all([C.setLoss('vm1', false), B.setLoss('vm2', false)]);
        },
      });
      await cluster.progress(100);
      const done = await cluster.finishAndVerify();
      assert.ok(done.retransmitted > 0, 'lost requests were sent again');
    } finally {
      await cluster.stop();
    }
  });
});
