// Live migration of a VM whose device is a durable backend (src/backend/durable-vm.ts), against
// the same migration of a VM whose device runs in the guest's thread (src/host/vm.ts): 8 RC QPs
// carrying checked traffic both ways with a peer VM (test/migration/rc-traffic.ts), the VM moved
// to a second host in this process over the coordinator's TCP stream, its address moving over
// real UDP. Durable: from one backend pool to another (a worker each). Rows (suite `durable`):
// total time, downtime (guest paused to resumed), the QP blackout's median, the switchover's steps
// (pause: the guest stopped and, for a durable VM, a backend's ping; suspend; save: for a durable
// device the backend's flush and commit and this thread's read of the journal; release of the
// address; restore; resume), the device state's size, and the downtime's ratio to the in-thread
// VM's. Medians of three runs; every run verifies its traffic.
import { BackendPool } from '../src/backend/backend-pool.js';
import { DurableVm } from '../src/backend/durable-vm.js';
import { Vm } from '../src/host/vm.js';
import type { DestinationVm, MigrationReport, RestoreParts, SourceVm } from '../src/migration/index.js';
import type { TrafficConfig } from '../test/migration/rc-traffic.js';
import { type TrafficVm, connectTraffic, moveWithTraffic, setUpTraffic } from '../test/backend/traffic-vms.js';
import type { BenchRow } from './harness.js';

const SUITE = 'durable';
const QPS = 8;
const OPS = 2000;
const RUNS = 3;
const HOST = '127.0.36.40';
const config = (side: number): TrafficConfig => ({ side, messageBytes: 1024, window: 4, recvDepth: 8, slots: 4, ops: OPS });

type AnyVm = TrafficVm & SourceVm & DestinationVm;

interface Engine {
  name: 'inline' | 'durable';
  open(ip: string): Promise<AnyVm>;
  restore(parts: RestoreParts): Promise<AnyVm>;
  vet(parts: Parameters<typeof Vm.vet>[0]): Promise<void>;
}

async function migrateOnce(engine: Engine, run: number): Promise<MigrationReport> {
  const [ipSrc, ipPeer] = [`127.0.36.${41 + 2 * run}`, `127.0.36.${42 + 2 * run}`];
  const src = await engine.open(ipSrc);
  const peer = await Vm.open({ ip: ipPeer });
  const vms: AnyVm[] = [src, peer];
  try {
    const [sa, sb] = [await setUpTraffic(src, QPS, config(0)), await setUpTraffic(peer, QPS, config(1))];
    const ta = await connectTraffic(src, sa, { ip: peer.ip, ...sb }, config(0), { timeout: 16 });
    const tb = await connectTraffic(peer, sb, { ip: src.ip, ...sa }, config(1), { timeout: 16 });
    ta.start();
    tb.start();
    while (ta.state.qps.some((q) => q.completed < OPS / 10)) await new Promise((resolve) => setTimeout(resolve, 2));
    const { traffic: moved, report } = await moveWithTraffic(src, ta, {
      host: HOST,
      vet: (parts) => engine.vet(parts),
      restore: async (parts) => {
        const vm = await engine.restore(parts);
        vms.push(vm);
        return vm;
      },
    }, { blackoutWatchMs: 100 });
    await Promise.all([moved.finished(60_000), tb.finished(60_000)]);
    const violations = [...(await moved.pause()).violations, ...(await tb.pause()).violations];
    if (violations.length > 0) throw new Error(`${engine.name} migration: ${violations[0]}`);
    return report;
  } finally {
    for (const vm of vms) await vm.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function migrationRows(): Promise<BenchRow[]> {
  const pools = [new BackendPool({ workers: 1 }), new BackendPool({ workers: 1 })];
  const engines: Engine[] = [
    {
      name: 'inline',
      open: (ip) => Vm.open({ ip }),
      restore: (parts) => Vm.restore(parts),
      vet: (parts) => Vm.vet(parts),
    },
    { name: 'durable', open: (ip) => DurableVm.open(pools[0], { ip }), restore: (parts) => DurableVm.restore(pools[1], parts), vet: (parts) => DurableVm.vet(parts) },
  ];
  const rows: BenchRow[] = [];
  try {
    for (const engine of engines) {
      const reports: MigrationReport[] = [];
      for (let run = 0; run < RUNS; run++) reports.push(await migrateOnce(engine, run));
      const m = (f: (r: MigrationReport) => number) => Number(median(reports.map(f)).toFixed(2));
      rows.push({
        suite: SUITE, name: `live migration, ${QPS} RC QPs of checked traffic`, engine: engine.name, unit: 'migration', opsPerSec: Number((1000 / m((r) => r.totalMs)).toFixed(2)),
        totalMs: m((r) => r.totalMs), downtimeMs: m((r) => r.downtimeMs), blackoutP50Ms: m((r) => r.blackout.p50Ms ?? Number.NaN),
        pauseMs: m((r) => r.phases.pauseMs), suspendMs: m((r) => r.phases.suspendMs), saveMs: m((r) => r.phases.saveMs), releaseMs: m((r) => r.phases.releaseMs),
        restoreMs: m((r) => r.phases.restoreMs), resumeMs: m((r) => r.phases.resumeMs),
        deviceStateBytes: m((r) => r.deviceStateBytes), runs: RUNS, verified: true,
      });
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  const inline = rows.find((r) => r.engine === 'inline') as BenchRow;
  return rows.map((r) => ({ ...r, downtime_vs_inline: Number(((r.downtimeMs as number) / (inline.downtimeMs as number)).toFixed(2)) }));
}
