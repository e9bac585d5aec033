// The host pool (src/host/pool) in this process: VMs placed on the least busy of its worker
// threads, a bound on what a host holds, and a worker killed mid-traffic: its VM is lost (calls
// say so), the pool replaces the thread, traffic between VMs in the other workers completes and
// verifies, and a new VM runs in the replacement.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type VmStatus, ramBytesFor } from '../../src/host/agent.js';
import { HostPool } from '../../src/host/pool/host-pool.js';
import type { StreamEndpoint, StreamRun } from '../../src/host/write-stream.js';
import { createLogger } from '../../src/observe/log.js';
import type { WorkloadConfig } from '../../src/workload/config.js';
import { waitUntil } from '../util/wait-until.js';
import { completed, drainAndVerify, pairUp } from './pool-pairs.js';

const CONFIG: WorkloadConfig = { qps: 4, messageBytes: 512, slots: 8, window: 4, recvDepth: 8, seed: 31 };
const RAM = ramBytesFor(CONFIG);
const log = createLogger('silent');


describe('host pool', { timeout: 90_000 }, () => {
  const pools: HostPool[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('places VMs on the least busy worker and refuses more than it may hold', async () => {
    const pool = new HostPool({ host: 'bounded', workers: 2, vmsPerWorker: 1, logLevel: 'silent', log, emit: () => {} });
    pools.push(pool);
    await pool.openVm({ name: 'v1', ip: '127.0.28.1', ramBytes: 16 << 20 });
    await pool.openVm({ name: 'v2', ip: '127.0.28.2', ramBytes: 16 << 20 });
    const placed = pool.placement();
    assert.equal(placed.threadIds.length, 2);
    assert.notEqual(placed.vms.v1, placed.vms.v2, `one VM per worker: ${JSON.stringify(placed)}`);
    await assert.rejects(pool.openVm({ name: 'v3', ip: '127.0.28.3', ramBytes: 16 << 20 }), /host bounded is full: 2 workers hold 1 VMs each/);
    await assert.rejects(pool.listen({ host: '127.0.28.9', port: 0 }), /is full/, 'a listener takes a slot too');
    await assert.rejects(pool.openVm({ name: 'v1', ip: '127.0.28.4' }), /already holds a VM named v1/);
    await assert.rejects(pool.call('v9', 'status', { vm: 'v9' }), /no VM named v9 on host bounded/);
    // A closed VM frees its slot.
    await pool.closeVm('v2');
    await pool.openVm({ name: 'v3', ip: '127.0.28.3', ramBytes: 16 << 20 });
    assert.deepEqual(pool.vmNames().sort(), ['v1', 'v3']);
    // Draining: nothing new is placed, the VMs run on, and it ends when the last has gone.
    let drained = false;
    const drain = pool.drain().then(() => (drained = true));
    await assert.rejects(pool.openVm({ name: 'v5', ip: '127.0.28.5', ramBytes: 16 << 20 }), /host bounded is draining/);
    assert.equal((await pool.call<VmStatus>('v1', 'status', { vm: 'v1' })).name, 'v1');
    await pool.closeVm('v1');
    assert.equal(drained, false);
    await pool.closeVm('v3');
    await drain;
    await pool.close();
    await assert.rejects(pool.openVm({ name: 'v4', ip: '127.0.28.4' }), /shutting down/);
  });

  it('moves a running VM to the least busy worker, by live migration inside the host, to even them out', async () => {
    // The main thread holds the sockets: the moving VM's address goes from one of its socket
    // sides to another, each feeding a different worker.
    const pool = new HostPool({ host: 'even', workers: 2, socket: 'main', logLevel: 'silent', log, emit: () => {} });
    pools.push(pool);
    // n (no workload, so the agent cannot move it), a and c share the first worker; b and d the other.
    for (const [name, n] of [['n', 5], ['b', 2], ['a', 1], ['d', 4], ['c', 3]] as const) await pool.openVm({ name, ip: `127.0.28.${30 + n}`, ramBytes: RAM });
    const first = pool.placement();
    assert.ok(first.vms.a === first.vms.c && first.vms.n === first.vms.a, `n, a and c share a worker: ${JSON.stringify(first)}`);
    // With one worker there is nowhere to go.
    const single = new HostPool({ host: 'single', workers: 1, logLevel: 'silent', log, emit: () => {} });
    pools.push(single);
    await single.openVm({ name: 'solo', ip: '127.0.28.39', ramBytes: 16 << 20 });
    assert.equal(await single.moveVm('solo'), null);
    assert.deepEqual(single.vmNames(), ['solo']);
    await single.close();
    // a and c talk to each other in one worker; the other worker is left empty.
    const [ea, ec] = await pairUp(pool, 'a', 'c', CONFIG);
    await pool.closeVm('b');
    await pool.closeVm('d');
    await waitUntil('traffic', async () => (await completed(pool, 'a')) > 200);

    const { moves, refused } = await pool.rebalance();
    assert.deepEqual(refused.map((r) => r.vm), ['n'], JSON.stringify(refused));
    assert.match(refused[0].why, /no workload/);
    assert.deepEqual(moves.map((m) => [m.vm, m.from]), [['a', first.vms.a]]);
    const now = pool.placement();
    assert.notEqual(now.vms.a, now.vms.c, `a and c in different workers now: ${JSON.stringify(now)}`);
    assert.equal(now.vms.a, moves[0].to);
    assert.equal(now.vms.n, first.vms.n, 'n stays where it was, serving');
    assert.equal((await pool.call<VmStatus>('n', 'status', { vm: 'n' })).name, 'n');
    assert.deepEqual((await pool.rebalance()).moves, [], 'two and one is even enough');

    // The moved VM kept its QPs, and the traffic between the two workers goes on and checks out.
    const from = await completed(pool, 'a');
    await waitUntil('progress after the move', async () => (await completed(pool, 'a')) > from + 200);
    const [va, vc] = await drainAndVerify(pool, 'a', 'c');
    for (const [vm, v, e] of [['a', va, ea], ['c', vc, ec]] as const) {
      assert.deepEqual(v.problems, [], vm);
      assert.deepEqual(v.qpns, e.qpns, `${vm} kept its QPNs`);
      assert.ok(v.qpStates.every((st) => st === 'RTS'));
    }
  });

  it('terminates a worker that stops answering, and the rest of the host serves on', async () => {
    // The stall op is served only with VRDMA_DEBUG_OPS=1 in the workers' environment (copied when
    // they start, in the constructor).
    process.env.VRDMA_DEBUG_OPS = '1';
    let pool: HostPool;
    try {
      pool = new HostPool({ host: 'hang', workers: 2, hangMs: 2000, logLevel: 'silent', log, emit: () => {} });
    } finally {
      delete process.env.VRDMA_DEBUG_OPS;
    }
    pools.push(pool);
    await pool.openVm({ name: 'stuck', ip: '127.0.28.41', ramBytes: 16 << 20 });
    await pool.openVm({ name: 'fine', ip: '127.0.28.42', ramBytes: 16 << 20 });
    const before = pool.placement();
    assert.notEqual(before.vms.stuck, before.vms.fine);
    const stall = pool.call('stuck', 'stallThread', { vm: 'stuck', ms: 120_000 }).then(() => null, (err: unknown) => err as Error);
    await waitUntil('the hung worker terminated', async () => pool.placement().lost.stuck !== undefined, 20_000);
    assert.match(pool.placement().lost.stuck, new RegExp(`its worker thread ${before.vms.stuck} answered nothing for \\d+ ms and was terminated`));
    assert.match((await stall)?.message ?? '', /VM stuck on host hang was lost: .*answered nothing/, 'the call in flight says why');
    assert.equal((await pool.call<VmStatus>('fine', 'status', { vm: 'fine' })).name, 'fine');
    await waitUntil('a replacement worker', async () => pool.placement().threadIds.length === 2 && !pool.placement().threadIds.includes(before.vms.stuck));
  });

  it('charges an uncaught error to the VM task it arose in: the worker and its other VMs carry on', async () => {
    process.env.VRDMA_DEBUG_OPS = '1';
    let pool: HostPool;
    try {
      pool = new HostPool({ host: 'faults', workers: 1, logLevel: 'silent', log, emit: () => {} });
    } finally {
      delete process.env.VRDMA_DEBUG_OPS;
    }
    pools.push(pool);
    // Everything in one worker: a pair running traffic, and two VMs whose code will fail.
    for (const [name, n] of [['p', 1], ['q', 2], ['f1', 3], ['f2', 4]] as const) await pool.openVm({ name, ip: `127.0.28.${50 + n}`, ramBytes: RAM });
    const thread = pool.placement().threadIds[0];
    await pairUp(pool, 'p', 'q', CONFIG);
    await waitUntil('traffic', async () => (await completed(pool, 'p')) > 200);

    await pool.call('f1', 'faultLater', { vm: 'f1', kind: 'exception' });
    await pool.call('f2', 'faultLater', { vm: 'f2', kind: 'rejection' });
    await waitUntil('both faulty VMs given up', async () => Object.keys(pool.placement().lost).length === 2);
    const lost = pool.placement().lost;
    assert.match(lost.f1, new RegExp(`failed in worker thread ${thread} \\(the thread serves on\\): injected exception`));
    assert.match(lost.f2, /injected rejection/);
    await assert.rejects(pool.call('f1', 'status', { vm: 'f1' }), /VM f1 on host faults was lost: it failed/);
    assert.deepEqual(pool.placement().threadIds, [thread], 'the same worker thread serves on');

    const from = await completed(pool, 'p');
    await waitUntil('p and q progress', async () => (await completed(pool, 'p')) > from + 200);
    const [vp, vq] = await drainAndVerify(pool, 'p', 'q');
    for (const [vm, v] of [['p', vp], ['q', vq]] as const) assert.deepEqual(v.problems, [], vm);
    // The failed VMs' addresses were given up: a new VM can take one.
    await pool.openVm({ name: 'f3', ip: '127.0.28.53', ramBytes: 16 << 20 });
  });

  it('loses only the VMs of a killed worker, replaces the worker, and the rest of the traffic completes', async (t) => {
    // The sockets are the main thread's: Node 20 may abort the process when a worker holding a
    // socket is terminated while datagrams arrive (docs/worker-pool.md, "Who holds the sockets").
    const pool = new HostPool({ host: 'crash', workers: 3, socket: 'main', logLevel: 'silent', log, emit: () => {} });
    pools.push(pool);
    assert.equal(pool.placement().socket, 'main');
    // a, b and x go to the three idle workers (least busy first); y joins one of them.
    for (const [name, n] of [['a', 1], ['b', 2], ['x', 3], ['y', 4]] as const) await pool.openVm({ name, ip: `127.0.28.${10 + n}`, ramBytes: RAM });
    const placed = pool.placement();
    assert.equal(new Set([placed.vms.a, placed.vms.b, placed.vms.x]).size, 3, `a, b and x each in a worker of its own: ${JSON.stringify(placed)}`);
    await pairUp(pool, 'a', 'b', CONFIG);
    await pairUp(pool, 'x', 'y', CONFIG);
    await waitUntil('traffic on both pairs', async () => (await completed(pool, 'a')) > 200 && (await completed(pool, 'x')) > 200);

    assert.deepEqual(pool.placement().mainSockets, ['127.0.28.11', '127.0.28.12', '127.0.28.13', '127.0.28.14']);
    const dead = await pool.terminateWorkerOf('x');
    assert.equal(dead, placed.vms.x);
    await assert.rejects(pool.call('x', 'status', { vm: 'x' }), /VM x on host crash was lost: its worker thread \d+ died/);
    const lostAlong = Object.keys(placed.vms).filter((vm) => placed.vms[vm] === dead);
    assert.deepEqual(Object.keys(pool.placement().lost).sort(), lostAlong.sort());
    await waitUntil('a replacement worker', async () => pool.placement().threadIds.length === 3);
    assert.ok(!pool.placement().threadIds.includes(dead), 'the dead thread is gone from the pool');

    // a and b ran in other workers: their traffic goes on and checks out.
    const from = await completed(pool, 'a');
    await waitUntil('a and b progress after the crash', async () => (await completed(pool, 'a')) > from + 200);
    const [va, vb] = await drainAndVerify(pool, 'a', 'b');
    for (const [vm, v] of [['a', va], ['b', vb]] as const) {
      assert.deepEqual(v.problems, [], vm);
      assert.ok(v.ok && v.qpStates.every((s) => s === 'RTS'));
    }
    t.diagnostic(`lost with x's worker: ${lostAlong.join(', ')}`);
    if (!lostAlong.includes('y')) {
      // y's peer is gone with its device state: y's QPs exhaust their retries and go to ERR,
      // flushing what was posted, rather than wait for ever.
      await waitUntil('y\'s QPs in ERR', async () => {
        const v = await pool.call<{ qpStates: string[] }>('y', 'verify', { vm: 'y', peerOps: [0, 0, 0, 0] });
        return v.qpStates.every((st) => st === 'ERR');
      }, 30_000);
      await pool.closeVm('y');
    }

    // A new VM goes to the replacement (it holds nothing) and moves data. It takes x's address:
    // the main thread closed the socket the dead worker's VM had.
    await waitUntil('sockets held for a and b only', async () => pool.placement().mainSockets.join() === '127.0.28.11,127.0.28.12');
    await pool.openVm({ name: 'z', ip: '127.0.28.13', ramBytes: RAM });
    const fresh = pool.placement();
    assert.ok(fresh.threadIds.includes(fresh.vms.z) && fresh.vms.z !== dead);
    const [ez, eb] = await Promise.all([pool.call<StreamEndpoint>('z', 'setupStream', { vm: 'z' }), pool.call<StreamEndpoint>('b', 'setupStream', { vm: 'b' })]);
    await Promise.all([pool.call('z', 'connectStream', { vm: 'z', peer: eb, mtu: 4096 }), pool.call('b', 'connectStream', { vm: 'b', peer: ez, mtu: 4096 })]);
    const run = await pool.call<StreamRun>('z', 'runStream', { vm: 'z', size: 4096, window: 16, durationMs: 200 });
    assert.ok(run.messages > 0 && run.bytes === run.messages * 4096);
    const metrics = await pool.metrics();
    const vms = new Set(metrics.find((m) => m.name === 'vrdma_device_packets_sent_total')!.values.map((v) => v.labels.vm));
    assert.ok(vms.has('a') && vms.has('z') && !vms.has('x'), `metrics count the VMs held: ${[...vms]}`);
  });
});
