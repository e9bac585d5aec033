// The demo's migration step, in one place: move VM `vm` from host `from` to host `to` while the
// traffic runs — the destination agent listens on its host address, the source agent runs the
// coordinator (pre-copy over the dirty logs, pause the workload, suspend, save, move the address,
// restore, resume) — telling `onProgress` the phase, round and pages left as they change. It
// returns the migration's figures, or null with the reason when the migration failed (the VM then
// runs on where it was).
import type { AgentClient } from '../host/agent-client.js';
import type { MigrationEvent } from '../host/agent.js';
import type { MigrationReport } from '../migration/index.js';
import { roundPhases } from '../migration/report.js';
import type { MigrationFigures } from './summary.js';

export interface MigrationProgress {
  /** Pre-copy while the guest runs; the switchover with it stopped; after, once it runs on `to`. */
  phase: 'precopy' | 'switchover' | 'after';
  round?: number;
  pagesLeft?: number;
}

export interface MigrateStepArgs {
  vm: string;
  from: AgentClient;
  to: AgentClient;
  /** The destination host's address: its coordinator listens there. */
  toIp: string;
  onProgress: (p: MigrationProgress) => void;
  /** Guest RAM pages: what round 0 (every page) has left to send. */
  ramPages: number;
  suspendPolicy?: 'rnr-nak' | 'drop';
}

export interface MigrateStepResult {
  figures: MigrationFigures | null;
  note: string;
}

const DEMO_PHASE: Record<MigrationEvent['phase'], MigrationProgress['phase']> = {
  connect: 'precopy', precopy: 'precopy', 'stop-and-copy': 'switchover', switchover: 'switchover', 'blackout-watch': 'after', done: 'after',
};

export async function migrateStep(args: MigrateStepArgs): Promise<MigrateStepResult> {
  const port = await args.to.listen({ host: args.toIp, port: 0 });
  let report: MigrationReport;
  try {
    report = await args.from.migrate({ vm: args.vm, host: args.toIp, port, suspendPolicy: args.suspendPolicy }, (e) => {
      args.onProgress({ phase: DEMO_PHASE[e.phase], round: e.round, pagesLeft: e.round === 0 ? args.ramPages : e.dirtyPages });
    });
    await args.to.accepted(port);
  } catch (err) {
    await args.to.accepted(port).catch(() => {});
    return { figures: null, note: `failed: ${(err as Error).message}` };
  }
  return { figures: figuresOf(report, args.from.host, args.to.host), note: `${args.from.host} -> ${args.to.host}` };
}

const ms = (x: number) => Math.round(x * 100) / 100;

export function figuresOf(r: MigrationReport, from: string, to: string): MigrationFigures {
  return {
    from, to, rounds: r.rounds.length, pagesPerRound: r.rounds.map((x) => x.pages), stopReason: r.stopReason, bytesMoved: r.bytesMoved,
    deviceStateBytes: r.deviceStateBytes, totalMs: ms(r.totalMs), downtimeMs: ms(r.downtimeMs), switchoverMs: ms(r.switchoverMs),
    qpBlackoutP50Ms: r.blackout.p50Ms === null ? null : ms(r.blackout.p50Ms), qpBlackoutP99Ms: r.blackout.p99Ms === null ? null : ms(r.blackout.p99Ms),
    qpsWithoutCompletion: r.blackout.perQp.filter((q) => q.ms === null).length,
    phasesMs: roundPhases(r.phases, 2),
  };
}
