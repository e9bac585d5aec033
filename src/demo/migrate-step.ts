// The demo's migration step, in one place: move VM `vm` from host `from` to host `to` while the
// traffic runs, telling `onProgress` the phase, round and pages left as they change. It returns
// the migration's figures, or null with the reason when no migration could run.
import type { AgentClient } from '../host/agent-client.js';
import type { MigrationFigures } from './summary.js';

export interface MigrationProgress {
  phase: 'precopy' | 'switchover';
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
}

export interface MigrateStepResult {
  figures: MigrationFigures | null;
  note: string;
}

export async function migrateStep(_args: MigrateStepArgs): Promise<MigrateStepResult> {
  // The migration coordinator (src/migration: pre-copy over the dirty log, suspend, save, move the
  // address, restore, resume) is not part of this build yet; the demo runs its traffic phases
  // without it and says so.
  return { figures: null, note: 'not run: this build has no migration coordinator yet' };
}
