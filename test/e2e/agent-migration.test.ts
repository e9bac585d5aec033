// Issue 5's end-to-end migration through the host agents (separate processes, real UDP on
// loopback): VM1 (host A) and VM2 (host B) run the checked workload both ways on 8 RC QPs (WRITE
// with immediate, SEND/RECV, READ, fetch-add); VM1 moves to host C mid-traffic, its suspended QPs
// answering requests with RNR NAKs (the default) or dropping them. Afterwards both memories match
// the reference model byte for byte, every WR completed exactly once, QPNs and keys are unchanged
// and no QP is in ERR. A destination that cannot take the VM (it holds one of that name) refuses
// it, and VM1 carries on at the source, then moves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cluster, E2E_WORKLOAD } from './agent-cluster.js';

describe('live migration through the host agents', { timeout: 60_000 }, () => {
  for (const [policy, base] of [['rnr-nak', 1], ['drop', 6]] as const) {
    it(`moves VM1 A -> C mid-traffic, suspended QPs ${policy === 'drop' ? 'dropping requests' : 'answering RNR NAK'}`, async () => {
      const ip = (i: number) => `127.0.27.${base + i}`;
      const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD });
      try {
        await cluster.start();
        await cluster.progress(200);
        const report = await cluster.migrate(2, { suspendPolicy: policy });
        await cluster.progress(200);
        const done = await cluster.finishAndVerify();
        assert.ok(done.ops > 800);
        assert.ok(report.rounds.length >= 2 && report.rounds.at(-1)!.final);
        assert.equal(report.ip, ip(3), 'the VM kept its address');
        assert.equal(report.blackout.perQp.length, 8);
        assert.ok(report.downtimeMs > 0 && report.appStateBytes > 0 && report.deviceStateBytes > 0);
      } finally {
        await cluster.stop();
      }
    });
  }

  it('leaves VM1 running on A when C refuses it, then moves it', async () => {
    const ip = (i: number) => `127.0.27.${21 + i}`;
    const cluster = new Cluster({ hostIps: [ip(0), ip(1), ip(2)], vmIps: [ip(3), ip(4)], config: E2E_WORKLOAD });
    try {
      await cluster.start();
      await cluster.refusedThenMoved(ip(5));
    } finally {
      await cluster.stop();
    }
  });
});
