// Two host agents (separate processes, real UDP on loopback) run the checked workload between
// their VMs through every agent operation: open, set up, connect, start, status, pause and resume
// from the state blob, drain, settle, verify against the model, metrics, close. Once with the VMs
// on each host's main thread, once in a pool of two worker threads (every op routed to the VM's
// task over its port).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/host/agent-client.js';
import type { WorkloadEndpoint } from '../../src/host/agent.js';
import { ramBytesFor } from '../../src/host/agent.js';
import { RemoteError } from '../../src/host/ipc.js';
import type { WorkloadConfig } from '../../src/workload/config.js';
import { waitUntil } from '../util/wait-until.js';

const CONFIG: WorkloadConfig = { qps: 4, messageBytes: 2048, slots: 8, window: 6, recvDepth: 8, seed: 77 };


for (const [workers, net] of [[0, 25], [2, 33]] as const) describe(`host agents, ${workers === 0 ? 'VMs on the main thread' : `${workers} workers`}`, { timeout: 60_000 }, () => {
  const a = new AgentClient('agent-a', { workers });
  const b = new AgentClient('agent-b', { workers });
  let ea: WorkloadEndpoint;
  let eb: WorkloadEndpoint;

  before(async () => {
    await Promise.all([a.started, b.started]);
    await a.openVm({ name: 'vm1', ip: `127.0.${net}.1`, ramBytes: ramBytesFor(CONFIG) });
    await b.openVm({ name: 'vm2', ip: `127.0.${net}.2`, ramBytes: ramBytesFor(CONFIG) });
    [ea, eb] = await Promise.all([a.setupWorkload('vm1', CONFIG, 0), b.setupWorkload('vm2', CONFIG, 1)]);
    await Promise.all([a.connect('vm1', ea, eb, 1024), b.connect('vm2', eb, ea, 1024)]);
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('answers ping with its VMs, and refuses what it does not hold', async () => {
    assert.deepEqual((await a.ping()).vms, ['vm1']);
    await assert.rejects(a.status('vm9'), (err: unknown) => err instanceof RemoteError && /no VM named vm9/.test(err.message));
    await assert.rejects(a.openVm({ name: 'vm1', ip: `127.0.${net}.9` }), /already holds/);
  });

  it('runs traffic both ways, survives a pause and resume from the blob, and verifies', async () => {
    await Promise.all([a.start('vm1'), b.start('vm2')]);
    await waitUntil('traffic both ways', async () => (await a.status('vm1')).workload!.opsCompleted > 400 && (await b.status('vm2')).workload!.opsCompleted > 400);
    // The vCPU stops: nothing more is posted or polled until the blob comes back.
    const blob = await a.pause('vm1');
    assert.ok(blob.length < 4096, `state blob of ${blob.length} bytes`);
    const paused = (await a.status('vm1')).workload!;
    assert.equal(paused.phase, 'paused');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await a.status('vm1')).workload!.opsPosted, paused.opsPosted);
    await a.resume('vm1', blob);
    const before = (await a.status('vm1')).workload!.opsCompleted;
    await waitUntil('progress after resume', async () => (await a.status('vm1')).workload!.opsCompleted > before + 200);

    const [opsA, opsB] = await Promise.all([a.drain('vm1'), b.drain('vm2')]);
    await Promise.all([a.settle('vm1', opsB), b.settle('vm2', opsA)]);
    const [va, vb] = await Promise.all([a.verify('vm1', opsB), b.verify('vm2', opsA)]);
    assert.deepEqual(va.problems, []);
    assert.deepEqual(vb.problems, []);
    assert.equal(va.ok && vb.ok, true);
    assert.deepEqual(va.qpns, ea.qpns);
    assert.ok(va.qpStates.every((s) => s === 'RTS'));
    const sa = await a.status('vm1');
    assert.equal(sa.workload!.opsCompleted, opsA.reduce((x, y) => x + y, 0));
    assert.equal(sa.workload!.violationCount, 0);
  });

  it('verification fails when the peer counts disagree with memory', async () => {
    const opsB = (await b.status('vm2')).workload!.qps.map((q) => q.sendPosted);
    const wrong = opsB.map((n, i) => (i === 0 ? n + 4 : n));
    const v = await a.verify('vm1', wrong);
    assert.equal(v.ok, false);
    assert.ok(v.problems.some((p) => /QP 0: the peer sent \d+ messages/.test(p)), v.problems.join('\n'));
    assert.ok(v.problems.some((p) => /model says/.test(p)), v.problems.join('\n'));
  });

  it('serves per-QP and per-device metrics', async () => {
    const json = await a.metrics();
    const names = new Set(json.map((m) => m.name));
    for (const n of ['vrdma_qp_packets_sent_total', 'vrdma_qp_completions_total', 'vrdma_device_bytes_received_total', 'vrdma_migration_phase']) assert.ok(names.has(n), n);
    const sent = json.find((m) => m.name === 'vrdma_qp_packets_sent_total')!;
    assert.equal(sent.values.length, CONFIG.qps);
    for (const v of sent.values) assert.ok(v.value > 0);
    const done = json.find((m) => m.name === 'vrdma_qp_completions_total')!;
    const success = done.values.filter((v) => v.labels.status === 'Success').reduce((s, v) => s + v.value, 0);
    const st = await a.status('vm1');
    assert.equal(success, st.workload!.opsCompleted + st.workload!.recvCompleted);
  });
});
