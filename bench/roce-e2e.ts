// RDMA end to end through the whole stack: two VMs (src/host/vm.ts), each a guest library driving
// a virtio-rdma device over SoftRoce, connected over the in-process loopback hub and over real
// UDP sockets on loopback addresses (the kernel carries every packet), in one process; UDP batched
// (sendmmsg/recvmmsg, as VMs run), one dgram call per datagram with pooled send buffers, and dgram
// with a fresh Buffer per send (the baselines).
// Measured: RDMA WRITE goodput (Gbit/s of payload) and message rate for 64 B, 4 KiB and 64 KiB
// messages with a window of WRITEs in flight, and SEND ping-pong round-trip latency p50/p99.
// Rows are emitted directly (not through tinybench): a run is a fixed amount of work whose
// completions arrive through the event loop, and latency wants percentiles.
import { type PerformanceEntry, PerformanceObserver, constants } from 'node:perf_hooks';
import { CqeStatus, SendFlag, SendOpcode } from '../src/device/abi.js';
import type { SendRequest } from '../src/guest/rdma/wqe.js';
import { Vm } from '../src/host/vm.js';
import { LoopbackHub } from '../src/net/loopback.js';
import { nativeStatus } from '../src/native/addon.js';
import type { BenchRow } from './harness.js';
import { type End, WINDOW, connectEnds, end, writes } from './rc-writes.js';

const SUITE = 'roce-e2e';
const BUF_BYTES = 64 * 1024 * WINDOW;

type Transport = 'loopback-hub' | 'udp' | 'udp-dgram' | 'udp-unpooled';

async function pair(transport: Transport): Promise<[End, End]> {
  const ips = transport === 'loopback-hub' ? ['10.0.0.1', '10.0.0.2'] : ['127.0.1.41', '127.0.1.42'];
  const hub = new LoopbackHub();
  const vms = await Promise.all(ips.map((ip) => Vm.open({
    ip, ramBytes: 16 * 1024 * 1024 + BUF_BYTES, link: transport === 'loopback-hub' ? hub.attach(ip) : undefined, pooledSends: transport !== 'udp-unpooled', batched: transport === 'udp',
  })));
  const [a, b] = await Promise.all(vms.map((vm) => end(vm, BUF_BYTES)));
  await connectEnds(a, b);
  return [a, b];
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `iters` SEND round trips of `size` bytes; returns each round trip in microseconds. */
async function pingpong(a: End, b: End, size: number, iters: number): Promise<number[]> {
  const recv = (e: End, n: number) => e.qp.postRecv(Array.from({ length: n }, () => ({ wrId: 1n, sgList: [{ addr: e.buf, length: size, lkey: e.lkey }] })));
  const send = (e: End): SendRequest => ({ wrId: 2n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [{ addr: e.buf + size, length: size, lkey: e.lkey }] });
  const wait = async (e: End, n: number) => {
    let got = 0;
    while (got < n) {
      const wcs = e.cq.poll();
      for (const wc of wcs) if (wc.status !== CqeStatus.Success) throw new Error(`SEND failed: status ${wc.status}`);
      got += wcs.length;
      if (got < n) await tick();
    }
  };
  const rtts: number[] = [];
  for (let i = 0; i < iters; i++) {
    recv(a, 1);
    recv(b, 1);
    const t0 = process.hrtime.bigint();
    a.qp.postSend([send(a)]);
    await wait(b, 1); // B's receive
    b.qp.postSend([send(b)]);
    await wait(a, 2); // A's receive and its own send's completion
    rtts.push(Number(process.hrtime.bigint() - t0) / 1000);
    await wait(b, 1); // B's send completion
  }
  return rtts;
}

/** Count the major (mark-compact) collections, and their pause time, until stop(). */
function watchMajorGc(): { stop(): { count: number; ms: number } } {
  let count = 0;
  let ms = 0;
  const take = (entries: PerformanceEntry[]) => {
    for (const e of entries as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      if (e.detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
      count++;
      ms += e.duration;
    }
  };
  const obs = new PerformanceObserver((list) => take(list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop() {
      // Entries are delivered asynchronously: take those still queued first.
      take(obs.takeRecords());
      obs.disconnect();
      return { count, ms };
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export default async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // Without the addon, 'udp' falls back to one dgram call per datagram: its rows say so.
  const native = nativeStatus();
  const udpPath = native.available ? 'mmsg' : native.reason;
  // udp: UdpLink as VMs run it (sendmmsg/recvmmsg through the addon where it is built); udp-dgram:
  // one node:dgram call per datagram, its baseline; udp-unpooled: dgram with a fresh Buffer per
  // send, the baseline of the dgram path's buffer pool.
  for (const transport of ['loopback-hub', 'udp', 'udp-dgram', 'udp-unpooled'] as const) {
    const [a, b] = await pair(transport);
    const path: Record<string, string> = transport === 'udp' ? { batching: udpPath } : {};
    try {
      for (const [size, count] of [[64, 20_000], [4096, 10_000], [65536, 2_000]]) {
        await writes(a, b, size, Math.min(count, 500)); // warm up
        const gc = watchMajorGc();
        const seconds = await writes(a, b, size, count);
        const { count: majorGcs, ms: majorGcMs } = gc.stop();
        const rate = count / seconds;
        rows.push({
          suite: SUITE, name: `rdma write ${size} B`, engine: transport, opsPerSec: rate, unit: 'message',
          gbitPerSec: Number(((rate * size * 8) / 1e9).toFixed(3)), window: WINDOW, majorGcs, majorGcMs: Number(majorGcMs.toFixed(1)), ...path,
        });
      }
      await pingpong(a, b, 64, 200); // warm up
      const rtts = (await pingpong(a, b, 64, 2000)).sort((x, y) => x - y);
      const mean = rtts.reduce((s, x) => s + x, 0) / rtts.length;
      rows.push({
        suite: SUITE, name: 'send pingpong 64 B', engine: transport, opsPerSec: 1e6 / mean, unit: 'round trip',
        p50Us: Number(percentile(rtts, 50).toFixed(1)), p99Us: Number(percentile(rtts, 99).toFixed(1)), ...path,
      });
    } finally {
      await Promise.all([a.vm.close(), b.vm.close()]);
    }
  }
  return rows;
}
