// What a migration reports (issue 5 item 6): the rounds, what moved, the downtime and each QP's
// blackout. Instants are ms since the epoch with sub-ms resolution (performance.timeOrigin +
// performance.now()), so the source and destination processes can compare theirs; across
// machines that needs synchronized clocks, as any downtime measured between two hosts does.
import type { QpInstant } from './messages.js';
import type { StopReason } from './precopy.js';

/** Now, as an instant comparable between processes on this machine. */
export function instant(): number {
  return performance.timeOrigin + performance.now();
}

export interface RoundReport {
  round: number;
  pages: number;
  zeroPages: number;
  /** Frame bytes of the round's PAGES messages. */
  bytes: number;
  ms: number;
  /** The stop-and-copy round, sent with the guest stopped. */
  final: boolean;
}

export interface QpBlackout {
  qpn: number;
  /** Suspend on the source to the first completion after resume on the destination; null if none came within the watch. */
  ms: number | null;
}

export interface BlackoutSummary {
  perQp: QpBlackout[];
  /** Over the QPs that completed within the watch; null if none did. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export interface MigrationReport {
  /** The VM's address, which moved with it. */
  ip: string;
  rounds: RoundReport[];
  stopReason: StopReason;
  pagesMoved: number;
  /** Every byte of the stream, both ways (frame headers included). */
  bytesMoved: number;
  deviceStateBytes: number;
  guestStateBytes: number;
  appStateBytes: number;
  /** The source's last guest activity (pauseGuest returned) to the destination's first (guest resumed). */
  downtimeMs: number;
  /** Guest stopped to the destination's confirmation, as the source saw it. */
  switchoverMs: number;
  blackout: BlackoutSummary;
  /** Where the switchover's time went, step by step (ms). */
  phases: SwitchoverPhases;
  /** Connect to the end of the blackout watch. */
  totalMs: number;
}

/**
 * The switchover step by step, in milliseconds. Source: taking the STATE_PREVIEW while the guest
 * ran (not downtime), then pauseGuest, suspending every QP, saving the device and the guest
 * driver, reading and sending the last dirty pages, sending the three states, releasing the
 * address. Destination (from CONFIRM): the trial restore of the preview (not downtime), restoreVm,
 * resuming QPs and guest.
 */
/** The phases rounded to `digits` decimals (reports and benchmark rows). */
export function roundPhases(p: SwitchoverPhases, digits: number): SwitchoverPhases {
  const f = 10 ** digits;
  const r = (x: number) => Math.round(x * f) / f;
  return {
    previewMs: r(p.previewMs), vetMs: r(p.vetMs), pauseMs: r(p.pauseMs), suspendMs: r(p.suspendMs), saveMs: r(p.saveMs),
    finalPagesMs: r(p.finalPagesMs), stateSendMs: r(p.stateSendMs), releaseMs: r(p.releaseMs), restoreMs: r(p.restoreMs), resumeMs: r(p.resumeMs),
  };
}

export interface SwitchoverPhases {
  previewMs: number;
  vetMs: number;
  pauseMs: number;
  suspendMs: number;
  saveMs: number;
  finalPagesMs: number;
  stateSendMs: number;
  releaseMs: number;
  restoreMs: number;
  resumeMs: number;
}

/** The p-th percentile (0..100) by nearest rank; null for no samples. */
export function percentile(samples: readonly number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Per-QP blackout from the suspend instants (source) and the first completions (destination). */
export function summarizeBlackout(suspended: readonly QpInstant[], firstCompletion: readonly QpInstant[]): BlackoutSummary {
  const first = new Map<number, number>();
  for (const q of firstCompletion) if (Number.isFinite(q.at)) first.set(q.qpn, q.at);
  const perQp = suspended.map((s): QpBlackout => {
    const at = first.get(s.qpn);
    return { qpn: s.qpn, ms: at === undefined ? null : Math.max(0, at - s.at) };
  });
  const ms = perQp.flatMap((q) => (q.ms === null ? [] : [q.ms]));
  return { perQp, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: ms.length === 0 ? null : Math.max(...ms) };
}
