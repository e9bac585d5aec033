// Issue 6's stress test: two host processes, each spreading its VMs over 4 worker threads, run
// four VM pairs at once, each pair the checked workload both ways on 16 RC QPs (WRITE with
// immediate, SEND/RECV, READ, fetch-add). Every completion is checked as it is polled — its status,
// opcode, byte count and place in its QP's order — so a lost, duplicated or reordered completion
// on any QP fails the run; at the end every memory matches the model byte for byte.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/host/agent-client.js';
import { type WorkloadEndpoint, ramBytesFor } from '../../src/host/agent.js';
import type { WorkloadConfig } from '../../src/workload/config.js';

const CONFIG: WorkloadConfig = { qps: 16, messageBytes: 256, slots: 16, window: 8, recvDepth: 16, seed: 4242 };
const PAIRS = 4;
const WORKERS = 4;
const OPS_EACH = 1500;

describe('many QPs on many workers', { timeout: 120_000 }, () => {
  const A = new AgentClient('stress-a', { workers: WORKERS });
  const B = new AgentClient('stress-b', { workers: WORKERS });
  const names = Array.from({ length: PAIRS }, (_, p) => [`a${p}`, `b${p}`] as const);

  before(async () => {
    await Promise.all([A.started, B.started]);
    const ram = ramBytesFor(CONFIG);
    for (const [p, [a, b]] of names.entries()) {
      await A.openVm({ name: a, ip: `127.0.29.${1 + p}`, ramBytes: ram });
      await B.openVm({ name: b, ip: `127.0.29.${101 + p}`, ramBytes: ram });
    }
  });

  after(async () => {
    await Promise.all([A.stop(), B.stop()]);
  });

  it('runs four pairs at once with no lost, duplicated or reordered completion on any QP', async () => {
    for (const host of [A, B]) {
      const placed = await host.placement();
      assert.equal(new Set(Object.values(placed.vms)).size, PAIRS, `each VM in a worker of its own: ${JSON.stringify(placed)}`);
    }
    const ends: [WorkloadEndpoint, WorkloadEndpoint][] = await Promise.all(names.map(([a, b]) => Promise.all([A.setupWorkload(a, CONFIG, 0), B.setupWorkload(b, CONFIG, 1)])));
    await Promise.all(names.map(([a, b], p) => Promise.all([A.connect(a, ends[p][0], ends[p][1], 1024), B.connect(b, ends[p][1], ends[p][0], 1024)])));
    await Promise.all(names.flatMap(([a, b]) => [A.start(a), B.start(b)]));

    const deadline = Date.now() + 60_000;
    for (;;) {
      const done = await Promise.all(names.flatMap(([a, b]) => [A.status(a), B.status(b)]));
      for (const s of done) assert.equal(s.workload!.violationCount, 0, `${s.name}: ${s.workload!.violationCount} violations`);
      if (done.every((s) => s.workload!.opsCompleted >= OPS_EACH)) break;
      assert.ok(Date.now() < deadline, `no progress to ${OPS_EACH} each: ${done.map((s) => s.workload!.opsCompleted)}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const drained = await Promise.all(names.map(([a, b]) => Promise.all([A.drain(a), B.drain(b)])));
    await Promise.all(names.map(([a, b], p) => Promise.all([A.settle(a, drained[p][1]), B.settle(b, drained[p][0])])));
    for (const [p, [a, b]] of names.entries()) {
      const [va, vb] = await Promise.all([A.verify(a, drained[p][1]), B.verify(b, drained[p][0])]);
      assert.deepEqual(va.problems, [], a);
      assert.deepEqual(vb.problems, [], b);
      assert.equal(va.qpns.length, CONFIG.qps);
      for (const v of [va, vb]) assert.ok(v.qpStates.every((s) => s === 'RTS'), `QP states ${v.qpStates}`);
      const [sa, sb] = await Promise.all([A.status(a), B.status(b)]);
      const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
      assert.equal(sa.workload!.opsCompleted, sum(drained[p][0]), `${a}: every posted WR completed once`);
      assert.equal(sb.workload!.opsCompleted, sum(drained[p][1]), `${b}: every posted WR completed once`);
    }
  });
});
