// What the demo reports at the end: one plain object (printed as JSON with --json, as a table
// otherwise, and into the HTML report), and the timeline of throughput samples behind it.
import type { SwitchoverPhases } from '../migration/report.js';

export type DemoPhase = 'before' | 'precopy' | 'switchover' | 'after';

export interface ThroughputSample {
  /** Milliseconds since the traffic started. */
  tMs: number;
  /** Payload bytes per second completed by both VMs' operations over the last interval. */
  bytesPerSec: number;
  phase: DemoPhase;
}

export interface PhaseSpan {
  phase: DemoPhase;
  startMs: number;
  endMs: number;
}

export interface MigrationFigures {
  from: string;
  to: string;
  /** Pre-copy rounds, the final stop-and-copy round included. */
  rounds: number;
  pagesPerRound: number[];
  /** Why pre-copy stopped (dirty set under the threshold, round limit, ...). */
  stopReason: string;
  bytesMoved: number;
  deviceStateBytes: number;
  totalMs: number;
  /** Last guest activity on the source to the first on the destination. */
  downtimeMs: number;
  /** Guest stopped on the source to the destination's confirmation. */
  switchoverMs: number;
  /** Suspend of each QP to its first completion after resume, over the QPs: p50 and p99. */
  qpBlackoutP50Ms: number | null;
  qpBlackoutP99Ms: number | null;
  /** QPs with no completion within the destination's watch (not in the percentiles). */
  qpsWithoutCompletion: number;
  /** The switchover step by step (the migration report's phases), in ms. */
  phasesMs: SwitchoverPhases;
}

export interface DemoSummary {
  demo: 'live-migration';
  verified: boolean;
  problems: string[];
  hosts: { name: string; ip: string }[];
  /** `threads`: the host/worker thread id each VM ran in, in order (empty when the hosts ran no workers). */
  vms: { name: string; ip: string; startedOn: string; endedOn: string; qpns: number[]; opsCompleted: number; threads: string[] }[];
  settings: { qps: number; messageBytes: number; mtu: number; loss: number; workers: number; durable?: boolean; durationMs: number; window: number };
  throughputMBps: { before: number | null; during: number | null; after: number | null };
  /** null when no migration ran (why in migrationNote). */
  migration: MigrationFigures | null;
  migrationNote: string;
  retransmissions: number;
  rnrNaks: number;
  bytesVerified: number;
  elapsedMs: number;
}

const MB = 1e6;

/** Mean throughput of the samples inside [startMs, endMs), in MB/s, or null if none. */
export function meanThroughputMBps(samples: readonly ThroughputSample[], startMs: number, endMs: number): number | null {
  const inside = samples.filter((s) => s.tMs > startMs && s.tMs <= endMs);
  if (inside.length === 0) return null;
  return round(inside.reduce((sum, s) => sum + s.bytesPerSec, 0) / inside.length / MB, 2);
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const fmt = (x: number | null, unit: string) => (x === null ? 'n/a' : `${x.toLocaleString('en-US')} ${unit}`);

/** Where the downtime went, in the order it was spent. */
function switchoverSteps(p: SwitchoverPhases): string {
  const steps: [string, number][] = [
    ['pause', p.pauseMs], ['suspend', p.suspendMs], ['save', p.saveMs], ['last pages', p.finalPagesMs], ['states', p.stateSendMs],
    ['release', p.releaseMs], ['restore', p.restoreMs], ['resume', p.resumeMs],
  ];
  return `${steps.map(([k, v]) => `${k} ${v}`).join(', ')} ms`;
}

/** Where the VMs ran: each host's worker count, and each VM's host/thread in order. */
function workerThreads(s: DemoSummary): string {
  if (s.settings.durable === true) return `${Math.max(1, s.settings.workers)} per host running the VMs' devices as durable backends (the guests on each host's main thread)`;
  if (s.settings.workers === 0) return 'none (each host runs its VMs on its main thread)';
  const where = s.vms.map((v) => `${v.name} in ${v.threads.map((t) => t.replace('/', ' thread ')).join(' then ')}`);
  return `${s.settings.workers} per host; ${where.join(', ')}`;
}

/** The closing summary as text lines. */
export function summaryLines(s: DemoSummary): string[] {
  const rows: [string, string][] = [
    ['throughput before', fmt(s.throughputMBps.before, 'MB/s')],
    ['throughput during', fmt(s.throughputMBps.during, 'MB/s')],
    ['throughput after', fmt(s.throughputMBps.after, 'MB/s')],
    ['migration', s.migration === null ? s.migrationNote : `${s.migration.from} -> ${s.migration.to} in ${s.migration.totalMs} ms`],
    ['downtime', s.migration === null ? 'n/a' : `${s.migration.downtimeMs} ms`],
    ['QP blackout', s.migration === null ? 'n/a' : `p50 ${fmt(s.migration.qpBlackoutP50Ms, 'ms')}, p99 ${fmt(s.migration.qpBlackoutP99Ms, 'ms')}`],
    ['switchover steps', s.migration === null ? 'n/a' : switchoverSteps(s.migration.phasesMs)],
    ['pre-copy rounds', s.migration === null ? 'n/a' : `${s.migration.rounds} (${s.migration.pagesPerRound.join(', ')} pages; ${s.migration.stopReason})`],
    ['moved', s.migration === null ? 'n/a' : `${(s.migration.bytesMoved / 1e6).toFixed(1)} MB (device state ${s.migration.deviceStateBytes.toLocaleString('en-US')} bytes)`],
    ['retransmissions', String(s.retransmissions)],
    ['RNR NAKs', String(s.rnrNaks)],
    ['worker threads', workerThreads(s)],
    ['operations', s.vms.map((v) => `${v.name} ${v.opsCompleted.toLocaleString('en-US')}`).join(', ')],
    ['bytes checked', s.bytesVerified.toLocaleString('en-US')],
    ['data verified', s.verified ? 'yes' : 'NO'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  for (const p of s.problems) out.push(`  problem: ${p}`);
  return out;
}
