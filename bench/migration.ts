// Live migration (issue 5): the dirty log's costs. Rows:
//   harvest   an 8 MiB bitmap (a 256 GiB guest) at 0%, 0.1%, 1% and 50% of pages dirty, Wasm
//             kernel vs TypeScript twin, in GB/s of bitmap scanned (target: empty in <= 1 ms);
//   mark      DirtyLog.mark() per call with logging off and on (the data path's cost);
//   goodput   RDMA WRITE between two in-process VMs (loopback hub) with both dirty logs off vs
//             on and harvested every 10 ms, as pre-copy would (target: drop <= 5%).
// Each producer is exported so that other rows (switchover, blackout) can join the suite.
import { Vm } from '../src/host/vm.js';
import { Arena } from '../src/memory/arena.js';
import { DirtyLog } from '../src/migration/dirty-log.js';
import { LoopbackHub } from '../src/net/loopback.js';
import type { KernelEngine } from '../src/virtio/queue.js';
import { type BenchRow, runTasks, withRatios } from './harness.js';
import { WINDOW, connectEnds, end, writes } from './rc-writes.js';

export const SUITE = 'migration';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BITMAP_BYTES = 8 * MiB;

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Harvest throughput of an 8 MiB bitmap at each density, both engines. */
export async function harvestRows(densities = [0, 0.001, 0.01, 0.5]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const base = 128 * 1024;
  const pages = Math.ceil((base + BITMAP_BYTES + 2 * MiB) / 65536);
  for (const density of densities) {
    // The same dirty set for both engines: a template restored before every timed harvest.
    const template = new Uint8Array(BITMAP_BYTES);
    const rand = xorshift(12345);
    const bits = BITMAP_BYTES * 8;
    const dirty = Math.round(bits * density);
    if (density >= 0.5) {
      for (let i = 0; i < BITMAP_BYTES; i++) template[i] = rand() & 0xff;
    } else {
      for (let n = 0; n < dirty; n++) {
        const p = rand() % bits;
        template[p >>> 3] |= 1 << (p & 7);
      }
    }
    for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      const log = DirtyLog.create(memory, new Arena(base, pages * 65536 - base), BITMAP_BYTES * 8 * 4096, { engine, outCap: 65536 });
      const bitmap = new Uint8Array(memory.buffer, log.placement.bitmapOff, BITMAP_BYTES);
      const times: number[] = [];
      let taken = 0;
      const budgetMs = 600;
      const started = Date.now();
      for (let i = 0; i < 200 && (i < 5 || Date.now() - started < budgetMs); i++) {
        bitmap.set(template);
        const t0 = process.hrtime.bigint();
        taken = log.harvestChunks(() => {});
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const ms = median(times.slice(1));
      rows.push({
        suite: SUITE, name: `harvest 8 MiB bitmap, ${density * 100}% dirty`, engine, unit: 'harvest', opsPerSec: 1000 / ms,
        ms: Number(ms.toFixed(3)), gbPerSec: Number((BITMAP_BYTES / (ms / 1000) / 1e9).toFixed(2)), pages: taken, guestGiB: (BITMAP_BYTES * 8 * 4096) / GiB,
      });
    }
  }
  return withRatios(rows);
}

/** mark() per call, logging off and on: what each logged write costs the data path. */
export async function markRows(): Promise<BenchRow[]> {
  const memory = new WebAssembly.Memory({ initial: 8, maximum: 8, shared: true });
  const off = DirtyLog.create(memory, new Arena(128 * 1024, 128 * 1024), 1 * GiB);
  const on = DirtyLog.create(memory, new Arena(256 * 1024, 128 * 1024), 1 * GiB);
  on.start();
  const N = 10_000;
  const run = (log: DirtyLog, len: number) => () => {
    for (let i = 0; i < N; i++) if (log.enabled) log.mark((i * 7919 * 64) % GiB, len);
  };
  return runTasks(SUITE, [
    { name: 'mark 64 B (a CQE)', engine: 'log-off', unit: 'mark', opsPerCall: N, fn: run(off, 64) },
    { name: 'mark 64 B (a CQE)', engine: 'log-on', unit: 'mark', opsPerCall: N, fn: run(on, 64) },
    { name: 'mark 4 KiB (a packet)', engine: 'log-off', unit: 'mark', opsPerCall: N, fn: run(off, 4096) },
    { name: 'mark 4 KiB (a packet)', engine: 'log-on', unit: 'mark', opsPerCall: N, fn: run(on, 4096) },
  ], 200);
}

// ---- goodput -------------------------------------------------------------------------------

/** RDMA WRITE goodput with the dirty logs off and on (alternating runs, median of each). */
export async function goodputRows(sizes = [4096, 65536], runs = 5): Promise<BenchRow[]> {
  const hub = new LoopbackHub();
  const bufBytes = 64 * 1024 * WINDOW;
  const vms = await Promise.all(['10.0.21.1', '10.0.21.2'].map((ip) => Vm.open({ ip, ramBytes: 16 * MiB + bufBytes, link: hub.attach(ip) })));
  const [a, b] = await Promise.all(vms.map((vm) => end(vm, bufBytes)));
  await connectEnds(a, b);
  const logs = vms.flatMap((vm) => [vm.dirtyLog, vm.cpuLog]);
  const rows: BenchRow[] = [];
  try {
    for (const size of sizes) {
      const count = Math.max(500, Math.round((128 * MiB) / size));
      await writes(a, b, size, Math.min(count, 1000)); // warm up
      const seconds: Record<'off' | 'on', number[]> = { off: [], on: [] };
      let harvested = 0;
      for (let r = 0; r < runs; r++) {
        for (const mode of ['off', 'on'] as const) {
          let timer: NodeJS.Timeout | undefined;
          if (mode === 'on') {
            for (const log of logs) log.start();
            // Pre-copy rounds while traffic runs.
            timer = setInterval(() => {
              for (const log of logs) harvested += log.harvestChunks(() => {});
            }, 10);
          }
          seconds[mode].push(await writes(a, b, size, count));
          if (timer !== undefined) clearInterval(timer);
          for (const log of logs) log.stop();
        }
      }
      const gbit = (s: number) => (count * size * 8) / s / 1e9;
      const off = gbit(median(seconds.off));
      const on = gbit(median(seconds.on));
      const base = { suite: SUITE, name: `rdma write ${size} B goodput`, unit: 'message', window: WINDOW, runs };
      rows.push({ ...base, engine: 'log-off', opsPerSec: (off * 1e9) / 8 / size, gbitPerSec: Number(off.toFixed(3)) });
      rows.push({
        ...base, engine: 'log-on', opsPerSec: (on * 1e9) / 8 / size, gbitPerSec: Number(on.toFixed(3)),
        dropPct: Number((((off - on) / off) * 100).toFixed(1)), pagesHarvested: harvested,
      });
    }
  } finally {
    await Promise.all(vms.map((vm) => vm.close()));
  }
  return rows;
}

export default async function run(): Promise<BenchRow[]> {
  return [...(await harvestRows()), ...(await markRows()), ...(await goodputRows()), ...(await (await import('./migration-switchover.js')).switchoverRows())];
}
