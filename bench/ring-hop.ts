// What one crossing between threads costs on the data path when the main thread holds a VM's
// socket (a host pool with socket 'main', or a durable backend): datagrams go through the packet
// rings (src/backend/packet-ring.ts) to a worker that echoes them back (ring-echo-worker.ts), both
// ends RingLinks as the pool and the backends use them. Against the same echo as a direct call in
// one thread. One datagram at a time gives the round trip (two crossings, each a wake-up of a
// sleeping thread); 64 in flight gives the cost per datagram when the crossings batch.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { PacketRing } from '../src/backend/packet-ring.js';
import { RingLink } from '../src/backend/ring-link.js';
import type { BenchRow } from './harness.js';

const SUITE = 'scaling';
const BYTES = 64;
const ROUND_TRIPS = 5000;
const BURSTS = 500;
const BURST = 64;

/** Send `n` datagrams and wait until `n` have come back. */
type Echo = (n: number) => Promise<void>;

async function timeEcho(echo: Echo): Promise<{ rtUs: number; perDatagramUs: number }> {
  for (let i = 0; i < 200; i++) await echo(1);
  let t0 = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) await echo(1);
  const rtUs = ((performance.now() - t0) * 1000) / ROUND_TRIPS;
  t0 = performance.now();
  for (let i = 0; i < BURSTS; i++) await echo(BURST);
  const perDatagramUs = ((performance.now() - t0) * 1000) / (BURSTS * BURST);
  return { rtUs, perDatagramUs };
}

/** Echo through a worker thread over two packet rings. */
async function ringEcho(): Promise<{ echo: Echo; close: () => Promise<void> }> {
  const toWorker = PacketRing.create(1 << 20);
  const fromWorker = PacketRing.create(1 << 20);
  const worker = new Worker(new URL('./ring-echo-worker.js', import.meta.url), { workerData: { rings: { tx: fromWorker.buffer, rx: toWorker.buffer } } });
  await once(worker, 'online');
  const link = new RingLink('127.0.0.1', 4791, { tx: toWorker.buffer, rx: fromWorker.buffer });
  const packet = new Uint8Array(BYTES);
  let waiting = 0;
  let done: (() => void) | null = null;
  link.onPacket(() => {
    if (--waiting === 0) done?.();
  });
  const echo: Echo = (n) => new Promise<void>((resolve) => {
    waiting = n;
    done = resolve;
    for (let i = 0; i < n; i++) link.send(packet, '127.0.0.2', 4791);
  });
  return { echo, close: async () => { await link.close(); await worker.terminate(); } };
}

/** The same echo as a direct call in this thread (each datagram copied, as a ring copies it). */
function directEcho(): Echo {
  const packet = new Uint8Array(BYTES);
  const copy = new Uint8Array(BYTES);
  let back = 0;
  const far = (bytes: Uint8Array): void => {
    copy.set(bytes);
    back++;
  };
  return async (n) => {
    back = 0;
    for (let i = 0; i < n; i++) far(packet);
    if (back !== n) throw new Error('echo lost a datagram');
  };
}

export async function ringHopRows(): Promise<BenchRow[]> {
  const ring = await ringEcho();
  // Atomics.waitAsync does not keep this thread's event loop alive either.
  const alive = setInterval(() => {}, 1 << 30);
  let viaRing: { rtUs: number; perDatagramUs: number };
  try {
    viaRing = await timeEcho(ring.echo);
  } finally {
    clearInterval(alive);
    await ring.close();
  }
  const direct = await timeEcho(directEcho());
  const row = (engine: string, r: { rtUs: number; perDatagramUs: number }): BenchRow[] => [
    { suite: SUITE, name: `datagram of ${BYTES} B there and back, one at a time`, engine, unit: 'round trip', opsPerSec: 1e6 / r.rtUs, usPerRoundTrip: Number(r.rtUs.toFixed(2)) },
    { suite: SUITE, name: `datagrams of ${BYTES} B there and back, ${BURST} at a time`, engine, unit: 'datagram', opsPerSec: 1e6 / r.perDatagramUs, usPerDatagram: Number(r.perDatagramUs.toFixed(3)) },
  ];
  return [...row('packet-ring', viaRing), ...row('direct', direct)];
}
