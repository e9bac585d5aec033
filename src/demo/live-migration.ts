// `vrdma demo`: three host processes on loopback addresses (A, B, C), VM1 on A and VM2 on B
// running the checked RDMA workload both ways on RC QPs, VM1 migrated from A to C mid-traffic,
// then everything drained and verified against the reference model. Throughput is sampled all
// along for the progress display, the summary and the HTML report.
import { writeFile } from 'node:fs/promises';
import { AgentClient } from '../host/agent-client.js';
import { type WorkloadEndpoint, ramBytesFor } from '../host/agent.js';
import type { LogLevel } from '../observe/log.js';
import { aggregateMetrics } from '../observe/metrics.js';
import { type MetricsServer, serveMetrics } from '../observe/metrics-server.js';
import { DEFAULT_WORKLOAD, type WorkloadConfig } from '../workload/config.js';
import { migrateStep } from './migrate-step.js';
import { Progress } from './progress.js';
import { renderReport } from './report.js';
import { type DemoPhase, type DemoSummary, type PhaseSpan, type ThroughputSample, meanThroughputMBps } from './summary.js';

export interface DemoOptions {
  /** Worker threads per host process, its VMs spread over them (0: on its main thread). */
  workers: number;
  /**
   * Run every VM's device as a durable backend in a pool of `workers` threads per host, the
   * guests on the host's main thread (src/backend): a worker's death costs no traffic.
   */
  durable?: boolean;
  mtu: number;
  /** Fraction of packets each VM's link drops, in [0, 1). */
  loss: number;
  qps: number;
  messageBytes: number;
  durationMs: number;
  /** pcap file of VM2's packets (the VM that stays: it sees every phase). */
  capture?: string;
  logLevel: LogLevel;
  metricsPort?: number;
  metricsHost: string;
  report?: string;
  json: boolean;
  hostIps: [string, string, string];
  vmIps: [string, string];
  /** Force plain progress lines (true) or the redrawn line (false); default: by TTY. */
  plainProgress?: boolean;
  /** Told the metrics URL once it serves. */
  onMetrics?: (url: string) => void;
}

export const DEMO_DEFAULTS = {
  workers: 2, mtu: 4096, loss: 0, qps: 8, messageBytes: 4096, durationMs: 12_000, logLevel: 'warn' as LogLevel,
  metricsHost: '127.0.0.1', hostIps: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] as [string, string, string], vmIps: ['127.0.1.1', '127.0.1.2'] as [string, string],
};

const SAMPLE_MS = 100;
const HOST_NAMES = ['A', 'B', 'C'] as const;

export interface DemoResult {
  summary: DemoSummary;
  samples: ThroughputSample[];
  phases: PhaseSpan[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runLiveMigrationDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const progress = o.json ? null : new Progress({ plain: o.plainProgress });
  const say = (line: string) => progress?.note(line);
  const hosts = HOST_NAMES.map((name) => new AgentClient(name, { logLevel: o.logLevel, workers: o.workers, durable: o.durable }));
  let metrics: MetricsServer | null = null;
  try {
    await Promise.all(hosts.map((h) => h.started));
    const [A, B, C] = hosts;
    const config: WorkloadConfig = { ...DEFAULT_WORKLOAD, qps: o.qps, messageBytes: o.messageBytes };
    const ramBytes = ramBytesFor(config);
    const lossy = o.loss > 0 ? { drop: o.loss, seed: 7 } : undefined;
    say(`hosts A ${o.hostIps[0]}, B ${o.hostIps[1]}, C ${o.hostIps[2]} (pids ${hosts.map((h) => h.pid).join(', ')})`);
    await A.openVm({ name: 'vm1', ip: o.vmIps[0], ramBytes, lossy });
    await B.openVm({ name: 'vm2', ip: o.vmIps[1], ramBytes, lossy, capturePath: o.capture });
    const [e1, e2]: WorkloadEndpoint[] = await Promise.all([A.setupWorkload('vm1', config, 0), B.setupWorkload('vm2', config, 1)]);
    await Promise.all([A.connect('vm1', e1, e2, o.mtu), B.connect('vm2', e2, e1, o.mtu)]);
    say(`VM1 ${o.vmIps[0]} on A and VM2 ${o.vmIps[1]} on B: ${o.qps} RC QPs, ${o.messageBytes}-byte WRITE-with-immediate, SEND, READ and fetch-add both ways, MTU ${o.mtu}${o.loss > 0 ? `, ${o.loss * 100}% loss` : ''}`);

    const where = new Map<string, AgentClient>([['vm1', A], ['vm2', B]]);
    // Which worker thread of its host each VM runs in (hosts with workers only).
    const threadOf = async (host: AgentClient, vm: string): Promise<string[]> => (o.workers > 0 && o.durable !== true ? [`${host.host}/${(await host.placement()).vms[vm]}`] : []);
    const threads = { vm1: await threadOf(A, 'vm1'), vm2: await threadOf(B, 'vm2') };
    if (o.metricsPort !== undefined) {
      metrics = await serveMetrics(o.metricsHost, o.metricsPort, async () => aggregateMetrics(await Promise.all(hosts.filter((h) => h.running).map((h) => h.metrics()))));
      o.onMetrics?.(metrics.url);
      say(`metrics: ${metrics.url}`);
    }

    // Sampling: completed payload bytes of both VMs, wherever they are.
    const samples: ThroughputSample[] = [];
    const phases: PhaseSpan[] = [];
    let phase: DemoPhase = 'before';
    let phaseStart = 0;
    let round: number | undefined;
    let pagesLeft: number | undefined;
    const lastBytes = new Map<string, number>();
    const tStart = Date.now();
    const setPhase = (p: DemoPhase) => {
      const now = Date.now() - tStart;
      phases.push({ phase, startMs: phaseStart, endMs: now });
      phase = p;
      phaseStart = now;
    };
    let lastT = tStart;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(SAMPLE_MS);
        let delta = 0;
        for (const [vm, host] of where) {
          try {
            const bytes = (await host.status(vm)).workload?.bytesCompleted ?? 0;
            delta += Math.max(0, bytes - (lastBytes.get(vm) ?? 0));
            lastBytes.set(vm, bytes);
          } catch {
            // The VM is between hosts: it completes nothing until it is resumed.
          }
        }
        const now = Date.now();
        const bytesPerSec = (delta * 1000) / Math.max(1, now - lastT);
        lastT = now;
        samples.push({ tMs: now - tStart, bytesPerSec, phase });
        progress?.update({ phase, elapsedMs: now - tStart, bytesPerSec, round, pagesLeft });
      }
    })();

    await Promise.all([A.start('vm1'), B.start('vm2')]);
    await sleep(o.durationMs * 0.4);
    const migration = await migrateStep({
      vm: 'vm1', from: A, to: C, toIp: o.hostIps[2], ramPages: ramBytes / 4096,
      onProgress: (p) => {
        if (p.phase === 'after') {
          // VM1 runs on C now (the source only watches for the QPs' first completions).
          where.set('vm1', C);
          round = undefined;
          pagesLeft = undefined;
        } else {
          round = p.round;
          pagesLeft = p.pagesLeft;
        }
        if (p.phase !== phase) {
          setPhase(p.phase);
          if (p.phase === 'precopy') say(`migrating VM1 from A to C (${o.hostIps[2]}): pre-copy`);
        }
      },
    });
    round = undefined;
    pagesLeft = undefined;
    if ((phase as DemoPhase) !== 'after') setPhase('after');
    if (migration.figures !== null) {
      where.set('vm1', C);
      threads.vm1.push(...(await threadOf(C, 'vm1')));
      const f = migration.figures;
      say(`VM1 migrated A -> C: ${f.rounds} rounds (${f.pagesPerRound.join(', ')} pages), downtime ${f.downtimeMs} ms, QP blackout p50 ${f.qpBlackoutP50Ms} ms p99 ${f.qpBlackoutP99Ms} ms`);
    } else {
      say(`migration ${migration.note}`);
    }
    await sleep(Math.max(0, o.durationMs - (Date.now() - tStart)));
    sampling = false;
    await sampler;
    const trafficEnd = Date.now() - tStart;
    phases.push({ phase, startMs: phaseStart, endMs: trafficEnd });
    progress?.done();

    // Drain, let the last messages arrive, verify both memories against the model.
    const vm1Host = where.get('vm1') as AgentClient;
    const [ops1, ops2] = await Promise.all([vm1Host.drain('vm1'), B.drain('vm2')]);
    await Promise.all([vm1Host.settle('vm1', ops2), B.settle('vm2', ops1)]);
    const [v1, v2] = await Promise.all([vm1Host.verify('vm1', ops2), B.verify('vm2', ops1)]);
    const [s1, s2] = await Promise.all([vm1Host.status('vm1'), B.status('vm2')]);
    const problems = [...v1.problems.map((p) => `vm1: ${p}`), ...v2.problems.map((p) => `vm2: ${p}`)];
    if (migration.figures === null) problems.push(`vm1 did not migrate: ${migration.note}`);
    if (migration.figures !== null && v1.qpns.join() !== e1.qpns.join()) problems.push(`vm1's QPNs changed: ${e1.qpns.join()} -> ${v1.qpns.join()}`);

    const precopy = phases.find((p) => p.phase === 'precopy');
    const duringStart = precopy?.startMs ?? null;
    const after = phases.find((p) => p.phase === 'after') as PhaseSpan;
    const summary: DemoSummary = {
      demo: 'live-migration',
      verified: v1.ok && v2.ok && problems.length === 0,
      problems,
      hosts: HOST_NAMES.map((name, i) => ({ name, ip: o.hostIps[i] })),
      vms: [
        { name: 'vm1', ip: o.vmIps[0], startedOn: 'A', endedOn: migration.figures !== null ? 'C' : 'A', qpns: v1.qpns, opsCompleted: s1.workload?.opsCompleted ?? 0, threads: threads.vm1 },
        { name: 'vm2', ip: o.vmIps[1], startedOn: 'B', endedOn: 'B', qpns: v2.qpns, opsCompleted: s2.workload?.opsCompleted ?? 0, threads: threads.vm2 },
      ],
      settings: { qps: o.qps, messageBytes: o.messageBytes, mtu: o.mtu, loss: o.loss, workers: o.workers, durable: o.durable === true, durationMs: o.durationMs, window: config.window },
      throughputMBps: {
        before: meanThroughputMBps(samples, 0, phases[0].endMs),
        during: duringStart === null ? null : meanThroughputMBps(samples, duringStart, after.startMs),
        after: meanThroughputMBps(samples, after.startMs, trafficEnd),
      },
      migration: migration.figures,
      migrationNote: migration.note,
      retransmissions: s1.retransmitted + s2.retransmitted,
      rnrNaks: s1.rnrNaksReceived + s2.rnrNaksReceived,
      bytesVerified: v1.areaBytes + v2.areaBytes,
      elapsedMs: Date.now() - t0,
    };
    if (o.report !== undefined) await writeFile(o.report, renderReport(summary, samples, phases));
    return { summary, samples, phases };
  } finally {
    progress?.done();
    await metrics?.close();
    await Promise.all(hosts.map((h) => h.stop().catch(() => {})));
  }
}
