// The end-to-end migration tests' cluster (issue 5, Tests): host agents in processes of their own
// (src/host/agent.ts), VM1 and VM2 on real UDP running the checked workload (src/workload) both
// ways on RC QPs, and the steps the tests combine — move VM1 to another host's listener mid-traffic,
// switch loss on and off, then drain, settle and verify both memories against the reference model.
// Not a test file.
import assert from 'node:assert/strict';
import { AgentClient } from '../../src/host/agent-client.js';
import { type MigrateArgs, type WorkloadEndpoint, ramBytesFor } from '../../src/host/agent.js';
import type { MigrationReport } from '../../src/migration/index.js';
import type { LossyOptions } from '../../src/net/lossy.js';
import type { WorkloadConfig } from '../../src/workload/config.js';

export interface ClusterOptions {
  /** Host addresses: A (VM1 first), B (VM2), C. */
  hostIps: [string, string, string];
  vmIps: [string, string];
  config: WorkloadConfig;
  /** Loss options of every VM's link (switched off until setLoss). */
  lossy?: LossyOptions;
  /** Worker threads of each host process (0, the default: VMs on its main thread). */
  workers?: number;
  /** Each host runs its VMs' devices as durable backends in a pool of `workers` threads. */
  durable?: boolean;
  /** Each host's pool keeps the VMs' sockets on its main thread. */
  mainSockets?: boolean;
}

export class Cluster {
  readonly hosts: [AgentClient, AgentClient, AgentClient];
  /** Which host index VM1 is on now. */
  vm1At = 0;
  e1!: WorkloadEndpoint;
  e2!: WorkloadEndpoint;
  readonly reports: MigrationReport[] = [];

  constructor(readonly o: ClusterOptions) {
    const options = { workers: o.workers ?? 0, durable: o.durable, mainSockets: o.mainSockets };
    this.hosts = [new AgentClient('A', options), new AgentClient('B', options), new AgentClient('C', options)];
  }

  get vm1Host(): AgentClient {
    return this.hosts[this.vm1At];
  }

  /** Start the hosts, open both VMs, connect their QPs (ACK timeout 2^17 * 4.096 us: 2 loaded cores), start the traffic. */
  async start(): Promise<void> {
    const [A, B] = this.hosts;
    await Promise.all(this.hosts.map((h) => h.started));
    const ramBytes = ramBytesFor(this.o.config);
    const loss = { lossy: this.o.lossy, lossEnabled: false };
    await A.openVm({ name: 'vm1', ip: this.o.vmIps[0], ramBytes, ...loss });
    await B.openVm({ name: 'vm2', ip: this.o.vmIps[1], ramBytes, ...loss });
    [this.e1, this.e2] = await Promise.all([A.setupWorkload('vm1', this.o.config, 0), B.setupWorkload('vm2', this.o.config, 1)]);
    const rc = { timeout: 17 };
    await Promise.all([A.connect('vm1', this.e1, this.e2, 1024, rc), B.connect('vm2', this.e2, this.e1, 1024, rc)]);
    await Promise.all([A.start('vm1'), B.start('vm2')]);
  }

  /** Wait until VM1 and VM2 each completed `more` operations past where they are now. */
  async progress(more: number, timeoutMs = 20_000): Promise<void> {
    const [, B] = this.hosts;
    const done = async () => [(await this.vm1Host.status('vm1')).workload!.opsCompleted, (await B.status('vm2')).workload!.opsCompleted];
    const from = await done();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await done();
      if (now.every((n, i) => n >= from[i] + more)) return;
      if (Date.now() > deadline) throw new Error(`no progress: ${from} -> ${now}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Move VM1 to host `to` mid-traffic; `around` runs just before and after (loss on, loss off). */
  async migrate(to: number, args: Partial<MigrateArgs> = {}, around?: { before(): Promise<void>; after(): Promise<void> }): Promise<MigrationReport> {
    const dest = this.hosts[to];
    const ip = this.o.hostIps[to];
    const port = await dest.listen({ host: ip, port: 0, lossy: this.o.lossy });
    await around?.before();
    const phases: string[] = [];
    const report = await this.vm1Host.migrate({ vm: 'vm1', host: ip, port, blackoutWatchMs: 1000, ...args }, (e) => phases.push(e.phase));
    const accepted = await dest.accepted(port);
    await around?.after();
    assert.equal(accepted.name, 'vm1');
    assert.deepEqual(accepted.qpns, this.e1.qpns, 'the same QPNs');
    assert.deepEqual(accepted.resumed, this.e1.qpns, 'every QP suspended and resumed');
    for (const p of ['precopy', 'stop-and-copy', 'switchover']) assert.ok(phases.includes(p), `progress told ${p}: ${phases}`);
    await assert.rejects(this.vm1Host.status('vm1'), /no VM named vm1/, 'the source holds VM1 no more');
    this.vm1At = to;
    this.reports.push(report);
    return report;
  }

  /**
   * Drain both, let the last messages land, verify: each memory matches the model byte for byte,
   * every WR completed exactly once, QPNs and keys as before, no QP in ERR.
   */
  async finishAndVerify(): Promise<{ ops: number; retransmitted: number; rnrNaks: number }> {
    const [, B] = this.hosts;
    const h1 = this.vm1Host;
    const [ops1, ops2] = await Promise.all([h1.drain('vm1'), B.drain('vm2')]);
    await Promise.all([h1.settle('vm1', ops2), B.settle('vm2', ops1)]);
    const [v1, v2] = await Promise.all([h1.verify('vm1', ops2), B.verify('vm2', ops1)]);
    assert.deepEqual(v1.problems, [], 'vm1');
    assert.deepEqual(v2.problems, [], 'vm2');
    assert.ok(v1.ok && v2.ok);
    assert.deepEqual(v1.qpns, this.e1.qpns);
    assert.deepEqual(v2.qpns, this.e2.qpns);
    assert.equal(v1.rkey, this.e1.rkey);
    assert.equal(v2.rkey, this.e2.rkey);
    for (const v of [v1, v2]) assert.ok(v.qpStates.every((s) => s === 'RTS'), `QP states ${v.qpStates}`);
    const [s1, s2] = await Promise.all([h1.status('vm1'), B.status('vm2')]);
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    assert.equal(s1.workload!.opsCompleted, sum(ops1));
    assert.equal(s2.workload!.opsCompleted, sum(ops2));
    assert.ok(sum(ops1) > 0 && sum(ops2) > 0);
    return { ops: sum(ops1) + sum(ops2), retransmitted: s1.retransmitted + s2.retransmitted, rnrNaks: s1.rnrNaksReceived + s2.rnrNaksReceived };
  }

  /**
   * C already holds a VM named vm1 (at `otherIp`): it refuses VM1, which runs on at A; then C
   * closes its own and VM1 moves, and the traffic verifies. The cluster must have started.
   */
  async refusedThenMoved(otherIp: string): Promise<void> {
    const [A, , C] = this.hosts;
    await C.openVm({ name: 'vm1', ip: otherIp, ramBytes: 16 << 20 });
    const port = await C.listen({ host: this.o.hostIps[2], port: 0 });
    await assert.rejects(A.migrate({ vm: 'vm1', host: this.o.hostIps[2], port }), /PEER_ABORT.*already holds a VM named vm1/);
    await assert.rejects(C.accepted(port), /SWITCHOVER|already holds/);
    assert.equal((await A.status('vm1')).workload!.phase, 'running', 'the workload resumed on A');
    await this.progress(100);
    await C.closeVm('vm1');
    await this.migrate(2);
    await this.progress(100);
    await this.finishAndVerify();
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.stop().catch(() => {})));
  }
}

/** A small workload: 8 QPs, short messages, so many operations of every kind run in a few seconds. */
export const E2E_WORKLOAD: WorkloadConfig = { qps: 8, messageBytes: 1024, slots: 8, window: 4, recvDepth: 8, seed: 2027 };
