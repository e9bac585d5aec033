// Backpressure in a host pool: a VM in a worker thread is flooded with 100 MB of datagrams aimed
// at its QPs (RDMA WRITE-only requests at random PSNs, none with a good ICRC) while it runs the
// checked workload with a VM in another worker. Nothing queues for them: the provider drops each
// on arrival (the kernel drops what the socket cannot hold), the worker's heap stays flat, and
// the workload carries on and verifies. With the sockets on the pool's main thread (socket
// 'main') the flood passes through its bounded packet ring as well: what does not fit is dropped
// and counted, and the main thread's heap stays flat too. The flood is sent from a thread of its
// own (flood-sender.ts), so the main thread is free to read.
//
// A slow peer: the receiving VM's worker is held up again and again (80 ms of every 120) while
// the other VM keeps its window of WRITEs, SENDs and READs going at it. Nothing piles up for it
// either: RC windows bound what a sender has outstanding, a full socket buffer or ring drops, and
// go-back-N recovers; the sender's and the main thread's heaps stay flat, and the traffic verifies.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { after, describe, it } from 'node:test';
import { type VmStatus, ramBytesFor } from '../../src/host/agent.js';
import { HostPool } from '../../src/host/pool/host-pool.js';
import type { ThreadStats } from '../../src/host/pool/vm-task.js';
import { createLogger } from '../../src/observe/log.js';
import type { WorkloadConfig } from '../../src/workload/config.js';
import type { FloodOrder } from './flood-sender.js';
import { completed, drainAndVerify, pairUp } from './pool-pairs.js';

const CONFIG: WorkloadConfig = { qps: 4, messageBytes: 1024, slots: 8, window: 4, recvDepth: 8, seed: 99 };
const FLOOD_PACKETS = 100_000;
const FLOOD_BYTES = 1024;
const MiB = 1 << 20;

describe('a flooded VM in a host pool', { timeout: 120_000 }, () => {
  const pools: HostPool[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  for (const [socket, net] of [['worker', 0], ['main', 10]] as const) {
    it(`drops the flood as it comes, keeps its heaps, and its traffic verifies (sockets held by the ${socket === 'main' ? 'main thread' : 'workers'})`, async (t) => {
      const pool = new HostPool({ host: `flood-${socket}`, workers: 2, socket, logLevel: 'silent', log: createLogger('silent'), emit: () => {} });
      pools.push(pool);
      const ram = ramBytesFor(CONFIG);
      const [ipA, ipB] = [`127.0.30.${net + 1}`, `127.0.30.${net + 2}`];
      await pool.openVm({ name: 'a', ip: ipA, ramBytes: ram });
      await pool.openVm({ name: 'b', ip: ipB, ramBytes: ram });
      const [ea] = await pairUp(pool, 'a', 'b', CONFIG);
      const heapBefore = (await pool.call<ThreadStats>('a', 'threadStats', { vm: 'a' })).heapUsedBytes;
      const mainBefore = process.memoryUsage().heapUsed;

      const order: FloodOrder = { from: `127.0.30.${net + 9}`, to: ipA, qpns: ea.qpns, packets: FLOOD_PACKETS, bytes: FLOOD_BYTES };
      const sender = new Worker(new URL('./flood-sender.js', import.meta.url), { workerData: order });
      const [done] = (await once(sender, 'message')) as [{ sent: number }];
      assert.equal(done.sent, FLOOD_PACKETS);

      const statsAfter = await pool.call<ThreadStats>('a', 'threadStats', { vm: 'a' });
      const grew = (statsAfter.heapUsedBytes - heapBefore) / MiB;
      const mainGrew = (process.memoryUsage().heapUsed - mainBefore) / MiB;
      assert.ok(grew < 32, `a's worker heap grew ${grew.toFixed(1)} MiB under a ${FLOOD_PACKETS * FLOOD_BYTES / MiB} MiB flood`);
      assert.ok(mainGrew < 32, `the main thread's heap grew ${mainGrew.toFixed(1)} MiB`);
      const metrics = await pool.metrics();
      const drops = metrics.find((m) => m.name === 'vrdma_device_dropped_packets_total')!.values.filter((v) => v.labels.vm === 'a');
      // The flood fails its ICRC check; a's own traffic may lose packets to a full socket buffer or
      // ring too, and go-back-N then drops what arrives after the gap ('out of sequence').
      const dropped = drops.find((v) => v.labels.reason === 'BAD_ICRC')?.value ?? 0;
      assert.ok(dropped > 0 && dropped <= FLOOD_PACKETS, `a dropped ${dropped} of the flood's packets (the kernel the rest)`);
      const ring = pool.placement().mainSocketDrops;
      if (socket === 'worker') assert.deepEqual(ring, { rx: 0, tx: 0 }, 'no rings without main-thread sockets');

      t.diagnostic(`heaps ${grew.toFixed(1)} MiB (a's worker), ${mainGrew.toFixed(1)} MiB (main) more; ${dropped} of ${FLOOD_PACKETS} dropped by the provider, ${ring.rx} by the main thread's ring; all provider drops ${JSON.stringify(Object.fromEntries(drops.map((v) => [v.labels.reason, v.value])))}`);
      const from = (await pool.call<VmStatus>('a', 'status', { vm: 'a' })).workload!.opsCompleted;
      const deadline = Date.now() + 15_000;
      while ((await pool.call<VmStatus>('a', 'status', { vm: 'a' })).workload!.opsCompleted < from + 200) {
        assert.ok(Date.now() < deadline, 'a makes progress after the flood');
        await new Promise((r) => setTimeout(r, 20));
      }
      const [va, vb] = await drainAndVerify(pool, 'a', 'b');
      for (const [vm, v] of [['a', va], ['b', vb]] as const) assert.deepEqual(v.problems, [], vm);
      await pool.close();
    });
  }
});

describe('a slow peer in a host pool', { timeout: 120_000 }, () => {
  // Eight QPs of 16 KiB messages, eight outstanding each: 1 MiB in flight each way.
  const SLOW: WorkloadConfig = { qps: 8, messageBytes: 16 * 1024, slots: 8, window: 8, recvDepth: 8, seed: 7 };
  const STALLS = 30;

  for (const [socket, net] of [['worker', 20], ['main', 30]] as const) {
    it(`a peer whose worker keeps stalling: the sender's heaps stay flat, it makes progress, and the traffic verifies (sockets held by the ${socket === 'main' ? 'main thread' : 'workers'})`, async (t) => {
      // The stall op is served only with VRDMA_DEBUG_OPS=1 in the workers' environment (copied when they start).
      process.env.VRDMA_DEBUG_OPS = '1';
      let pool: HostPool;
      try {
        pool = new HostPool({ host: `slow-${socket}`, workers: 2, socket, logLevel: 'silent', log: createLogger('silent'), emit: () => {} });
      } finally {
        delete process.env.VRDMA_DEBUG_OPS;
      }
      try {
        const ram = ramBytesFor(SLOW);
        await pool.openVm({ name: 'fast', ip: `127.0.30.${net + 1}`, ramBytes: ram });
        await pool.openVm({ name: 'slow', ip: `127.0.30.${net + 2}`, ramBytes: ram });
        const placed = pool.placement().vms;
        assert.notEqual(placed.fast, placed.slow, 'the two VMs run in different workers');
        await pairUp(pool, 'fast', 'slow', SLOW);
        while ((await completed(pool, 'fast')) < 100) await new Promise((r) => setTimeout(r, 20));
        const heapBefore = (await pool.call<ThreadStats>('fast', 'threadStats', { vm: 'fast' })).heapUsedBytes;
        const mainBefore = process.memoryUsage().heapUsed;
        const opsBefore = await completed(pool, 'fast');
        const started = performance.now();
        for (let i = 0; i < STALLS; i++) {
          await pool.call('slow', 'stallThread', { vm: 'slow', ms: 80 });
          await new Promise((r) => setTimeout(r, 40));
        }
        const seconds = (performance.now() - started) / 1000;
        const opsSlow = (await completed(pool, 'fast')) - opsBefore;
        const grew = ((await pool.call<ThreadStats>('fast', 'threadStats', { vm: 'fast' })).heapUsedBytes - heapBefore) / MiB;
        const mainGrew = (process.memoryUsage().heapUsed - mainBefore) / MiB;
        assert.ok(grew < 32, `the sender's worker heap grew ${grew.toFixed(1)} MiB`);
        assert.ok(mainGrew < 32, `the main thread's heap grew ${mainGrew.toFixed(1)} MiB`);
        assert.ok(opsSlow > 0, 'the sender made progress while its peer stalled');
        const ring = pool.placement().mainSocketDrops;
        t.diagnostic(`${opsSlow} operations in ${seconds.toFixed(1)} s of stalls (${(opsSlow / seconds).toFixed(0)}/s); heaps ${grew.toFixed(1)} MiB (sender's worker), ${mainGrew.toFixed(1)} MiB (main) more; ring drops ${JSON.stringify(ring)}`);
        const [va, vb] = await drainAndVerify(pool, 'fast', 'slow');
        for (const [vm, v] of [['fast', va], ['slow', vb]] as const) assert.deepEqual(v.problems, [], vm);
      } finally {
        await pool.close();
      }
    });
  }
});
