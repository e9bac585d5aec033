// Shared bench plumbing: run tinybench tasks, print a table, then one JSON object per line.
// Every suite runs its baselines side by side in the same process, so claims are ratios.
import { Bench } from 'tinybench';

export interface BenchRow {
  suite: string;
  name: string;
  /** The implementation measured: 'wasm', 'ts', 'native', ... */
  engine: string;
  /** Operations per second (a tinybench task iteration may do many operations). */
  opsPerSec: number;
  /** What one operation is ("descriptor", "lookup", "byte"...). */
  unit: string;
  [extra: string]: string | number | boolean;
}

export interface BenchTask {
  name: string;
  engine: string;
  unit: string;
  /** Operations done by one call of fn. */
  opsPerCall: number;
  fn: () => void;
  extra?: Record<string, string | number | boolean>;
}

/** Run tasks with tinybench; returns a row per task. */
export async function runTasks(suite: string, tasks: BenchTask[], timeMs = 300): Promise<BenchRow[]> {
  const bench = new Bench({ time: timeMs, warmupTime: 50 });
  for (const t of tasks) bench.add(`${t.name} [${t.engine}]`, t.fn);
  await bench.run();
  return tasks.map((t, i) => {
    const result = bench.tasks[i].result;
    const hz = result && 'throughput' in result ? result.throughput.mean : 0;
    return { suite, name: t.name, engine: t.engine, unit: t.unit, opsPerSec: hz * t.opsPerCall, ...t.extra };
  });
}

/** Add a ratio column: each row's rate over the baseline engine's rate for the same name. */
export function withRatios(rows: BenchRow[], baseline = 'ts'): BenchRow[] {
  return rows.map((row) => {
    const base = rows.find((r) => r.name === row.name && r.engine === baseline);
    return base && base.opsPerSec > 0 ? { ...row, [`vs_${baseline}`]: Number((row.opsPerSec / base.opsPerSec).toFixed(2)) } : row;
  });
}

/** Print a table for people, then JSON lines for machines. */
export function report(rows: BenchRow[]): void {
  const table = rows.map((r) => {
    const out: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(r)) out[k] = k === 'opsPerSec' ? Math.round(v as number).toLocaleString('en-US') : v;
    return out;
  });
  console.table(table);
  for (const row of rows) console.log(JSON.stringify({ ...row, opsPerSec: Math.round(row.opsPerSec) }));
}
