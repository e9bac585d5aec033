// What durability costs (src/backend): RDMA WRITE streams between two guests, with each device
//   - inline: in the guest's thread (src/host/vm.ts, as VMs run in one thread or one pool worker);
//   - backend: in a pool worker, the guest on this thread, without a journal (the price of the
//     split: calls and doorbells across threads);
//   - durable: the same with the journal: the whole device state committed at every pass and
//     before any packet leaves, so a killed worker costs no traffic;
//   - durable-main-socket: durable, with this thread holding the VMs' sockets and packets passed
//     to and from the workers through shared-memory rings (socket: 'main');
//   - durable-packed: durable, the guests on packed rings instead of split ones.
// Over batched UDP on loopback, in one process. The durable rows also say how often the sender's
// backend committed, how large an entry was and what a commit cost. Then two streams of durable
// devices over 1, 2 and 4 workers (durable-Nw), each against one worker; then live migration of a
// durable VM against an in-thread one (durable-migration.ts).
import { BackendPool, type DurableDevice } from '../src/backend/backend-pool.js';
import { RdmaGuest } from '../src/guest/rdma/device.js';
import { Vm } from '../src/host/vm.js';
import { Arena } from '../src/memory/arena.js';
import { VIRTIO_F_RING_PACKED } from '../src/virtio/queue.js';
import { migrationRows } from './durable-migration.js';
import type { BenchRow } from './harness.js';
import { type StreamEnd, WINDOW, connectEnds, streamEnd, writes } from './rc-writes.js';

const SUITE = 'durable';
const MiB = 1024 * 1024;
const RAM = 32 * MiB;
/** Each guest's data buffer: above its driver area, inside its RAM. */
const BUF = 16 * MiB;
const SIZES: [number, number][] = [[64, 10_000], [4096, 10_000], [65536, 1_000]];

/** A stream end, with the durable device behind it (null for an in-thread VM). */
interface Side extends StreamEnd {
  device: DurableDevice | null;
}

async function side(guest: RdmaGuest, ip: string, device: DurableDevice | null): Promise<Side> {
  return { ...(await streamEnd(guest, ip, BUF)), device };
}

async function measure(engine: string, a: Side, b: Side, rows: BenchRow[]): Promise<void> {
  for (const [size, count] of SIZES) {
    await writes(a, b, size, Math.min(count, 2000)); // warm up
    const before = a.device === null ? null : await a.device.counters();
    const seconds = await writes(a, b, size, count);
    const after = a.device === null ? null : await a.device.counters();
    const rate = count / seconds;
    const row: BenchRow = { suite: SUITE, name: `rdma write ${size} B`, engine, opsPerSec: rate, unit: 'message', gbitPerSec: Number(((rate * size * 8) / 1e9).toFixed(3)), window: WINDOW };
    if (before !== null && after !== null && after.commits > before.commits) {
      const commits = after.commits - before.commits;
      row.commitsPerSec = Math.round(commits / seconds);
      row.entryBytes = after.entryBytes;
      row.usPerCommit = Number((((after.commitMs - before.commitMs) * 1000) / commits).toFixed(1));
      row.messagesPerCommit = Number((count / commits).toFixed(1));
    }
    rows.push(row);
  }
}

export default async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const ips = ['127.0.36.1', '127.0.36.2'];
  {
    const vms = await Promise.all(ips.map((ip) => Vm.open({ ip, ramBytes: RAM })));
    try {
      const [a, b] = await Promise.all(vms.map((vm) => side(vm.guest, vm.ip, null)));
      await connectEnds(a, b);
      await measure('inline', a, b, rows);
    } finally {
      await Promise.all(vms.map((vm) => vm.close()));
    }
  }
  const engines = [['backend', false, 'worker', false], ['durable', true, 'worker', false], ['durable-main-socket', true, 'main', false], ['durable-packed', true, 'worker', true]] as const;
  for (const [engine, journal, socket, packed] of engines) {
    const pool = new BackendPool({ workers: 2 });
    try {
      const sides = await Promise.all(ips.map(async (ip) => {
        const device = await pool.open({ ip, ramBytes: RAM, journal, socket });
        const guest = RdmaGuest.open(device.transport, device.dm.guest, new Arena(0x10000, 4 * MiB), { packed });
        if (packed && !guest.has(VIRTIO_F_RING_PACKED)) throw new Error(`${engine}: the device did not offer packed rings`);
        return side(guest, ip, device);
      }));
      await connectEnds(sides[0], sides[1]);
      await measure(engine, sides[0], sides[1], rows);
    } finally {
      await pool.close();
    }
  }
  const ratioed = rows.map((r) => {
    const base = rows.find((x) => x.name === r.name && x.engine === 'backend');
    return base === undefined ? r : { ...r, vs_backend: Number((r.opsPerSec / base.opsPerSec).toFixed(2)) };
  });
  return [...ratioed, ...(await scaling()), ...(await migrationRows())];
}

const STREAM_SIZES: [number, number][] = [[64, 10_000], [4096, 10_000]];

/**
 * Two WRITE streams (four durable devices) over 1, 2 and 4 workers: the aggregate message rate,
 * and its ratio to one worker. The four guests share this thread, as in the rows above.
 */
async function scaling(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const workers of [1, 2, 4]) {
    const pool = new BackendPool({ workers });
    try {
      const ips = ['127.0.36.11', '127.0.36.12', '127.0.36.13', '127.0.36.14'];
      const sides: Side[] = [];
      // Writers first, then targets: with two workers each runs one writer and one target.
      for (const ip of [ips[0], ips[2], ips[1], ips[3]]) {
        // Sockets in the workers, so that packets are not all handled on this thread beside the
        // four busy-polling guests (with socket 'main', the default, that thread is the bottleneck).
        const device = await pool.open({ ip, ramBytes: RAM, socket: 'worker' });
        const guest = RdmaGuest.open(device.transport, device.dm.guest, new Arena(0x10000, 4 * MiB));
        sides.push(await side(guest, ip, device));
      }
      const [a1, a2, b1, b2] = sides;
      await connectEnds(a1, b1);
      await connectEnds(a2, b2);
      for (const [size, count] of STREAM_SIZES) {
        await Promise.all([writes(a1, b1, size, 2000), writes(a2, b2, size, 2000)]); // warm up
        const started = performance.now();
        await Promise.all([writes(a1, b1, size, count), writes(a2, b2, size, count)]);
        const rate = (2 * count) / ((performance.now() - started) / 1000);
        rows.push({
          suite: SUITE, name: `rdma write ${size} B, 2 streams`, engine: `durable-${workers}w`, opsPerSec: rate, unit: 'message',
          gbitPerSec: Number(((rate * size * 8) / 1e9).toFixed(3)), window: WINDOW, threads: new Set(sides.map((x) => x.device?.threadId)).size,
        });
      }
    } finally {
      await pool.close();
    }
  }
  return rows.map((r) => {
    const base = rows.find((x) => x.name === r.name && x.engine === 'durable-1w');
    return base === undefined ? r : { ...r, vs_1w: Number((r.opsPerSec / base.opsPerSec).toFixed(2)) };
  });
}
