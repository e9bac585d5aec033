// The demo's progress display: on a terminal, one status line redrawn in place (phase, time,
// throughput, pre-copy round and pages left); otherwise plain lines, one when the phase changes
// and one a second, so a log or CI output stays readable.

export interface ProgressState {
  phase: string;
  elapsedMs: number;
  bytesPerSec: number;
  round?: number;
  pagesLeft?: number;
}

export interface ProgressOptions {
  /** Where to write; default process.stdout. */
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force plain lines (true) or the redrawn line (false); default: plain unless `out` is a TTY. */
  plain?: boolean;
  /** Plain mode: at most one line per this many ms within a phase. */
  plainIntervalMs?: number;
}

export class Progress {
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  private readonly plain: boolean;
  private readonly intervalMs: number;
  private lastPhase = '';
  private lastLineMs = -Infinity;
  private drawn = false;

  constructor(options: ProgressOptions = {}) {
    this.out = options.out ?? process.stdout;
    this.plain = options.plain ?? this.out.isTTY !== true;
    this.intervalMs = options.plainIntervalMs ?? 1000;
  }

  update(s: ProgressState): void {
    const text = describe(s);
    if (this.plain) {
      if (s.phase === this.lastPhase && s.elapsedMs - this.lastLineMs < this.intervalMs) return;
      this.lastPhase = s.phase;
      this.lastLineMs = s.elapsedMs;
      this.out.write(`${text}\n`);
      return;
    }
    const width = Math.max(20, (this.out.columns ?? 100) - 1);
    this.out.write(`\r\x1b[2K${text.slice(0, width)}`);
    this.drawn = true;
  }

  /** A line of its own (an event), keeping the status line below it. */
  note(line: string): void {
    if (!this.plain && this.drawn) this.out.write('\r\x1b[2K');
    this.out.write(`${line}\n`);
    this.drawn = false;
  }

  /** Leave the terminal on a fresh line. */
  done(): void {
    if (!this.plain && this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}

export function describe(s: ProgressState): string {
  const parts = [`[${(s.elapsedMs / 1000).toFixed(1).padStart(5)} s]`, s.phase.padEnd(10), `${(s.bytesPerSec / 1e6).toFixed(1).padStart(7)} MB/s`];
  if (s.round !== undefined) parts.push(`round ${s.round}`);
  if (s.pagesLeft !== undefined) parts.push(`${s.pagesLeft} pages left`);
  return parts.join('  ');
}
