// The worker-crash demo (`vrdma worker-crash`): two guests on the main thread drive virtio-rdma
// devices that run as durable backends in a pool of worker threads (src/backend), with checked
// RC traffic between them over real UDP on loopback. While it runs, the worker holding one device
// is terminated, then the other's, and so on: each time the pool starts the device again from its
// journal on a worker that lives, and the traffic carries on. At the end every completion has
// arrived once and in order on every QP and every byte is verified at the receiver.
import type { RingFormat } from '../device/queue-factory.js';
import { VIRTIO_F_RING_PACKED } from '../virtio/queue.js';
import { runCheckedTraffic } from './checked-traffic.js';
import { connectPair, durableGuest, withPool } from './durable-pair.js';

export interface WorkerCrashOptions {
  workers: number;
  qps: number;
  /** Operations per QP (alternately RDMA WRITE and SEND). */
  ops: number;
  bytes: number;
  window: number;
  /** Workers terminated during the traffic, alternately the sender's and the receiver's. */
  kills: number;
  ips: [string, string];
  /** Who holds the VMs' sockets: the workers (each restart binds again) or the main thread (rings). */
  socket: 'worker' | 'main';
  /** The ring format the guests negotiate. */
  rings: RingFormat;
}

export const WORKER_CRASH_DEFAULTS: WorkerCrashOptions = { workers: 2, qps: 8, ops: 200, bytes: 2048, window: 16, kills: 4, ips: ['127.0.37.1', '127.0.37.2'], socket: 'main', rings: 'split' };

export interface WorkerCrashReport {
  demo: 'worker-crash';
  verified: boolean;
  workers: number;
  qps: number;
  socket: 'worker' | 'main';
  /** The ring format both guests run on. */
  rings: RingFormat;
  completions: number;
  receives: number;
  bytesVerified: number;
  seconds: number;
  /** Each worker terminated: whose device, when (fraction of the traffic done), and the thread. */
  kills: { device: string; atFraction: number; thread: number }[];
  /** Each time a device came back from its journal, and how long it was without a backend. */
  outages: { device: string; thread: number; restoredOn: number; ms: number; restoreMs: number; bindMs: number }[];
}

export async function runWorkerCrash(o: WorkerCrashOptions, onEvent: (line: string) => void = () => {}): Promise<WorkerCrashReport> {
  return withPool({ workers: o.workers }, async (pool) => {
    const shape = { open: { packed: o.rings === 'packed' } };
    const a = await durableGuest(pool, o.ips[0], o.qps, { socket: o.socket }, shape);
    const b = await durableGuest(pool, o.ips[1], o.qps, { socket: o.socket }, shape);
    for (const g of [a, b]) {
      const format: RingFormat = g.guest.has(VIRTIO_F_RING_PACKED) ? 'packed' : 'split';
      if (format !== o.rings) throw new Error(`${g.device.ip} runs on ${format} rings, not ${o.rings}`);
    }
    await connectPair(a, b);
    onEvent(`two guests on the main thread, on ${o.rings} rings; their devices run in worker threads ${a.device.threadId} and ${b.device.threadId}; ${o.qps} RC QP pairs connected`);
    const kills: WorkerCrashReport['kills'] = [];
    const traffic = await runCheckedTraffic(a, b, {
      ops: o.ops, bytes: o.bytes, window: o.window, timeoutMs: 120_000,
      onProgress: async (done) => {
        if (kills.length >= o.kills || done < (kills.length + 1) / (o.kills + 1)) return;
        await Promise.all([a.device.settled(), b.device.settled()]);
        const victim = kills.length % 2 === 0 ? a.device : b.device;
        const thread = await pool.terminateWorkerOf(victim);
        kills.push({ device: victim.ip, atFraction: Number(done.toFixed(2)), thread });
        onEvent(`${Math.round(done * 100)}% done: terminated worker thread ${thread}, which ran ${victim.ip}`);
      },
    });
    await Promise.all([a.device.settled(), b.device.settled()]);
    const round = (x: number) => Number(x.toFixed(1));
    const outages = [a.device, b.device].flatMap((d) => d.outages.map((x) => ({
      device: d.ip, thread: x.thread, restoredOn: x.restoredOn, ms: round(x.ms), restoreMs: round(x.restoreMs), bindMs: round(x.bindMs),
    })));
    for (const x of outages) onEvent(`${x.device} came back from its journal on thread ${x.restoredOn} after ${x.ms} ms without a backend (restore ${x.restoreMs} ms, bind ${x.bindMs} ms)`);
    const lost = [a.device, b.device].find((d) => d.lost !== null);
    if (lost !== undefined) throw new Error(`${lost.ip} could not be started again: ${lost.lost?.message}`);
    return {
      demo: 'worker-crash', verified: true, workers: o.workers, qps: o.qps, socket: o.socket, rings: o.rings, completions: traffic.sendCompletions, receives: traffic.recvCompletions,
      bytesVerified: traffic.bytesVerified, seconds: Number(traffic.seconds.toFixed(2)), kills, outages,
    };
  });
}
