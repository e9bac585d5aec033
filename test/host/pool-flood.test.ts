// Backpressure in a host pool: a VM in a worker thread is flooded with 100 MB of datagrams aimed
// at its QPs (RDMA WRITE-only requests at random PSNs, none with a good ICRC) while it runs the
// checked workload with a VM in another worker. Nothing queues for them: the provider drops each
// on arrival (the kernel drops what the socket cannot hold), the worker's heap stays flat, and
// the workload carries on and verifies.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { type VmStatus, ramBytesFor } from '../../src/host/agent.js';
import { HostPool } from '../../src/host/pool/host-pool.js';
import type { ThreadStats } from '../../src/host/pool/vm-task.js';
import { setBthAt } from '../../src/nic/roce/headers.js';
import { createLogger } from '../../src/observe/log.js';
import type { WorkloadConfig } from '../../src/workload/config.js';
import { drainAndVerify, pairUp } from './pool-pairs.js';

const CONFIG: WorkloadConfig = { qps: 4, messageBytes: 1024, slots: 8, window: 4, recvDepth: 8, seed: 99 };
const FLOOD_PACKETS = 100_000;
const FLOOD_BYTES = 1024;
const MiB = 1 << 20;

describe('a flooded VM in a host pool', { timeout: 90_000 }, () => {
  const pool = new HostPool({ host: 'flood', workers: 2, logLevel: 'silent', log: createLogger('silent'), emit: () => {} });
  const sock = dgram.createSocket('udp4');
  after(async () => {
    sock.close();
    await pool.close();
  });

  it('drops the flood as it comes, keeps its heap, and its traffic verifies', async (t) => {
    const ram = ramBytesFor(CONFIG);
    await pool.openVm({ name: 'a', ip: '127.0.30.1', ramBytes: ram });
    await pool.openVm({ name: 'b', ip: '127.0.30.2', ramBytes: ram });
    const [ea] = await pairUp(pool, 'a', 'b', CONFIG);
    const heapBefore = (await pool.call<ThreadStats>('a', 'threadStats', { vm: 'a' })).heapUsedBytes;

    await new Promise<void>((resolve) => sock.bind(0, '127.0.30.9', resolve));
    const packet = Buffer.alloc(FLOOD_BYTES);
    let sent = 0;
    while (sent < FLOOD_PACKETS) {
      const batch: Promise<void>[] = [];
      for (let i = 0; i < 512 && sent < FLOOD_PACKETS; i++, sent++) {
        randomFillSync(packet);
        // RDMA WRITE Only (RC opcode 0x0a) to one of a's QPs at a random PSN; the ICRC is noise.
        setBthAt(packet, 0, { opcode: 0x0a, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, dqpn: ea.qpns[sent % ea.qpns.length], ackReq: true, psn: packet[20] << 8 });
        batch.push(new Promise((resolve) => sock.send(packet, 4791, '127.0.30.1', () => resolve())));
      }
      await Promise.all(batch);
    }
    const statsAfter = await pool.call<ThreadStats>('a', 'threadStats', { vm: 'a' });
    assert.ok(statsAfter.heapUsedBytes - heapBefore < 32 * MiB, `a's worker heap grew ${((statsAfter.heapUsedBytes - heapBefore) / MiB).toFixed(1)} MiB under a ${FLOOD_PACKETS * FLOOD_BYTES / MiB} MiB flood`);
    const metrics = await pool.metrics();
    const drops = metrics.find((m) => m.name === 'vrdma_device_dropped_packets_total')!.values.filter((v) => v.labels.vm === 'a');
    // The flood fails its ICRC check; a's own traffic may lose packets to the full socket buffer
    // too, and go-back-N then drops what arrives after the gap ('out of sequence').
    const dropped = drops.find((v) => v.labels.reason === 'BAD_ICRC')?.value ?? 0;
    assert.ok(dropped > 0 && dropped <= FLOOD_PACKETS, `a dropped ${dropped} of the flood's packets (the kernel the rest)`);

    t.diagnostic(`heap ${((statsAfter.heapUsedBytes - heapBefore) / MiB).toFixed(1)} MiB more; ${dropped} of ${FLOOD_PACKETS} dropped by the provider; all drops ${JSON.stringify(Object.fromEntries(drops.map((v) => [v.labels.reason, v.value])))}`);
    const from = (await pool.call<VmStatus>('a', 'status', { vm: 'a' })).workload!.opsCompleted;
    const deadline = Date.now() + 15_000;
    while ((await pool.call<VmStatus>('a', 'status', { vm: 'a' })).workload!.opsCompleted < from + 200) {
      assert.ok(Date.now() < deadline, 'a makes progress after the flood');
      await new Promise((r) => setTimeout(r, 20));
    }
    const [va, vb] = await drainAndVerify(pool, 'a', 'b');
    for (const [vm, v] of [['a', va], ['b', vb]] as const) assert.deepEqual(v.problems, [], vm);
  });
});
