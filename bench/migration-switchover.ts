// Switchover costs of a live migration (issue 5 benchmark; suite `migration`): QP blackout p50/p99
// with 1, 8 and 64 RC QPs carrying traffic both ways (suspend on the source to each QP's first
// completion after resume on the destination), and downtime and total time for a 256 MiB guest
// whose vCPU keeps writing. Source, destination and peer VMs are in one process here, on real UDP
// sockets on loopback addresses and a real TCP stream between the coordinator's two ends: the
// kernel carries every packet, and the address really moves. Rows are emitted directly: each
// run is one migration, and the figures are durations.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AccessFlag, QpTypeCode } from '../src/device/abi.js';
import { connectRc } from '../src/host/connect.js';
import { Vm } from '../src/host/vm.js';
import { type MigrationReport, listenForMigration, migrateOut } from '../src/migration/index.js';
import { roundPhases } from '../src/migration/report.js';
import { RcTraffic, type TrafficConfig, type TrafficState, writeAreaBytes } from '../test/migration/rc-traffic.js';
import type { BenchRow } from './harness.js';

const SUITE = 'migration';
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const MiB = 1024 * 1024;
const DEST_HOST = '127.0.24.200';

function trafficOn(vm: Vm, state: TrafficState): RcTraffic {
  return new RcTraffic(vm.guest, (at, bytes) => vm.writeBuffer(at, bytes), (at, len) => vm.bytes(at, len).slice(), state);
}

/** Two VMs with `n` connected RC QPs and traffic objects (not started). */
async function pair(n: number, ipA: string, ipB: string, ramBytes: number, ops: number) {
  const config = (side: number): TrafficConfig => ({ side, messageBytes: 1024, window: 4, recvDepth: 8, slots: 4, ops });
  const open = async (ip: string, side: number) => {
    const vm = await Vm.open({ ip, ramBytes, driverBytes: 16 * MiB });
    const pd = await vm.guest.createPd();
    const c = config(side);
    const cq = await vm.guest.createCq(n * (c.window + c.recvDepth) + 16);
    const mr = await vm.guest.getDmaMr(pd, ALL);
    const qps = [];
    for (let i = 0; i < n; i++) {
      const qp = await vm.guest.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: c.window, maxRecvWr: c.recvDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
      qps.push({ qp, sendBase: vm.allocBuffer(c.window * c.messageBytes), recvBase: vm.allocBuffer(c.recvDepth * c.messageBytes), writeArea: vm.allocBuffer(writeAreaBytes(c)) });
    }
    return { vm, cq, qps, lkey: mr.lkey, rkey: mr.rkey, config: c };
  };
  const a = await open(ipA, 0);
  const b = await open(ipB, 1);
  // A local ACK timeout of 2^17 * 4.096 us (0.5 s): 128 QPs start at once on two shared cores.
  const attrs = { timeout: 17 };
  for (let i = 0; i < n; i++) {
    await connectRc(a.qps[i].qp, 1000 + i, { qpn: b.qps[i].qp.qpn, ip: ipB, psn: 5000 + i }, attrs);
    await connectRc(b.qps[i].qp, 5000 + i, { qpn: a.qps[i].qp.qpn, ip: ipA, psn: 1000 + i }, attrs);
  }
  const state = (x: typeof a, y: typeof a): TrafficState => ({
    config: x.config, cqn: x.cq.cqn, lkey: x.lkey, violations: [],
    qps: x.qps.map((q, i) => ({ qpn: q.qp.qpn, sendBase: q.sendBase, recvBase: q.recvBase, writeArea: q.writeArea, peerWriteArea: y.qps[i].writeArea, peerRkey: y.rkey, posted: 0, completed: 0, received: 0, recvPosted: 0 })),
  });
  return { a: { vm: a.vm, traffic: trafficOn(a.vm, state(a, b)) }, b: { vm: b.vm, traffic: trafficOn(b.vm, state(b, a)) } };
}

/** Migrate `vm` (running `traffic`) to a destination in this process; returns the report and the new VM. */
async function move(vm: Vm, traffic: RcTraffic, onGuestStopped: () => void = () => {}, preview = true) {
  let moved: { vm: Vm; traffic: RcTraffic } | null = null;
  const listener = listenForMigration<Vm>({ host: DEST_HOST, port: 0 }, {
    vetVm: (parts) => Vm.vet(parts),
    restoreVm: (parts) => Vm.restore(parts),
    resumeGuest: (v, app) => {
      const t = trafficOn(v, JSON.parse(new TextDecoder().decode(app)) as TrafficState);
      t.start();
      moved = { vm: v, traffic: t };
    },
  });
  const { port } = await listener.ready;
  const report: MigrationReport = await migrateOut(vm, { host: DEST_HOST, port }, {
    pauseGuest: async () => {
      onGuestStopped();
      return new TextEncoder().encode(JSON.stringify(await traffic.pause()));
    },
    resumeGuest: () => traffic.start(),
    preview,
  });
  await listener.accepted;
  return { report, moved: moved as unknown as { vm: Vm; traffic: RcTraffic } };
}

export async function blackoutRow(n: number, base: number, preview: boolean): Promise<BenchRow> {
  const { a, b } = await pair(n, `127.0.24.${base}`, `127.0.24.${base + 1}`, 64 * MiB, 1e9);
  a.traffic.start();
  b.traffic.start();
  // Let the traffic reach a steady state before moving.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const { report, moved } = await move(a.vm, a.traffic, () => {}, preview);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const violations = [...(await moved.traffic.pause()).violations, ...(await b.traffic.pause()).violations];
  await moved.vm.close();
  await b.vm.close();
  if (violations.length > 0) throw new Error(`traffic violations: ${violations.join('; ')}`);
  const answered = report.blackout.perQp.filter((q) => q.ms !== null).length;
  return {
    suite: SUITE, name: `QP blackout, ${n} RC QP${n === 1 ? '' : 's'}`, engine: preview ? 'preview' : 'no-preview', unit: 'migration', opsPerSec: 1000 / report.totalMs,
    qps: n, blackoutP50Ms: round(report.blackout.p50Ms), blackoutP99Ms: round(report.blackout.p99Ms), blackoutMaxMs: round(report.blackout.maxMs),
    qpsCompleted: answered, downtimeMs: round(report.downtimeMs), switchoverMs: round(report.switchoverMs), totalMs: round(report.totalMs),
    deviceStateBytes: report.deviceStateBytes, guestStateBytes: report.guestStateBytes, ...roundPhases(report.phases, 3),
  };
}

async function bigGuestRow(): Promise<BenchRow> {
  const ram = 256 * MiB;
  const { a, b } = await pair(1, '127.0.24.220', '127.0.24.221', ram, 1e9);
  a.traffic.start();
  b.traffic.start();
  // The vCPU write load: 32 random pages of a 64 MiB working set every millisecond (128 MiB/s).
  const ws = a.vm.allocBuffer(64 * MiB, 4096);
  let x = 12345;
  const page = new Uint8Array(256);
  const writer = setInterval(() => {
    for (let i = 0; i < 32; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      page.fill(x & 0xff);
      a.vm.writeBuffer(ws + (x % (16 * 1024)) * 4096, page);
    }
  }, 1);
  // Fill the guest's RAM with data first, as a guest that has run a while has.
  for (let off = 0; off < 64 * MiB; off += MiB) a.vm.fillBuffer(ws + off, MiB, (off / MiB) | 1);
  const { report, moved } = await move(a.vm, a.traffic, () => clearInterval(writer));
  const violations = [...(await moved.traffic.pause()).violations, ...(await b.traffic.pause()).violations];
  await moved.vm.close();
  await b.vm.close();
  if (violations.length > 0) throw new Error(`traffic violations: ${violations.join('; ')}`);
  return {
    suite: SUITE, name: '256 MiB guest, vCPU writing 128 MiB/s', engine: 'wasm', unit: 'byte', opsPerSec: report.bytesMoved / (report.totalMs / 1000),
    downtimeMs: round(report.downtimeMs), totalMs: round(report.totalMs), rounds: report.rounds.length, stopReason: report.stopReason,
    pagesMoved: report.pagesMoved, finalRoundPages: report.rounds.at(-1)!.pages, bytesMoved: report.bytesMoved, deviceStateBytes: report.deviceStateBytes,
  };
}

function round(x: number | null): number {
  return x === null ? -1 : Number(x.toFixed(3));
}

/**
 * One blackout row in a process of its own (migration-row.ts): a host migrates rarely, so its
 * first switchover, cold code and all, is the one that counts; in one process every row after
 * the first would run warm, and the preview's effect could not be told from the order.
 */
function blackoutRowApart(n: number, base: number, preview: boolean): Promise<BenchRow> {
  const child = fork(fileURLToPath(new URL('./migration-row.js', import.meta.url)), [String(n), String(base), preview ? 'preview' : 'no-preview'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`blackout row (${n} QPs, preview ${preview}) exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1) as string) as BenchRow);
    });
  });
}

/** The switchover rows of suite `migration`. */
export async function switchoverRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  let base = 100;
  // Without and with the STATE_PREVIEW (the trial save and restore before the switchover), side
  // by side, each the first migration of a fresh process.
  for (const n of [1, 8, 64]) {
    for (const preview of [false, true]) {
      rows.push(await blackoutRowApart(n, base, preview));
      base += 2;
    }
  }
  rows.push(await bigGuestRow());
  return rows;
}

export default switchoverRows;
