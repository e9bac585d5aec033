// The source side of a migration (what a VMM does to send a VM): connect, pre-copy RAM over the
// dirty logs while the guest runs, then stop the guest and, in one synchronous turn, suspend
// every QP, save the device and the guest driver, harvest the last dirty pages and read them; send
// all that, release the VM's address, and wait for the destination to confirm. Until it confirms
// the VM is the source's: any failure resumes the QPs and the guest here (rebinding the address if
// it was released) and rejects with the reason.
import { connect } from 'node:net';
import type { DeviceMemory } from '../memory/device-memory.js';
import { Channel, DEFAULT_TIMEOUT_MS } from './channel.js';
import { MigrationError, MigrationErrorCode, asMigrationError } from './errors.js';
import { MessageType, encodeFrame } from './frame.js';
import {
  type Confirm, type QpInstant, decodeBlackout, decodeConfirm, decodeHelloAck, encodeHello, encodeRoundEnd, encodeStatePreview, encodeSwitchover,
} from './messages.js';
import {
  DEFAULT_PRECOPY, type PageLog, type PagesSent, type PrecopyPolicy, type StopReason, allPages, checkPolicy, harvestAll, precopyDecision, ramRegions,
  readPages, sendPages, unionPages,
} from './precopy.js';
import { type BlackoutSummary, type MigrationReport, type RoundReport, type SwitchoverPhases, instant, summarizeBlackout } from './report.js';

/** What the coordinator needs of the VM it sends (src/host/vm.ts's Vm has all of it). */
export interface SourceVm {
  readonly ip: string;
  readonly dm: DeviceMemory;
  /** Pages the device wrote (R4). */
  readonly dirtyLog: PageLog;
  /** Pages the simulated guest (its vCPU) wrote. */
  readonly cpuLog: PageLog;
  readonly device: { saveState(): Uint8Array };
  /** The guest driver's state (RdmaGuest and the VM's buffer allocator), encoded. */
  saveGuestState(): Uint8Array;
  /** Close the VM's link: its address is free for the destination to bind (R7). */
  releaseAddress(): Promise<void>;
  /** Bind the address again after a failed switchover. */
  bindAddress(): Promise<void>;
  /**
   * Resolves once the device answers synchronous calls (verbs, saveState) at once: one run by a
   * backend that is being restarted in another thread waits for it here, since the coordinator's
   * synchronous turn would block the thread the restart needs (src/backend/durable-vm.ts).
   */
  settle?(): Promise<void>;
  /**
   * R6: suspend every QP that can be (canSuspend), ascending, and say when each was; on failure
   * none stays suspended. QP by QP in the VM's thread (qp-steps.ts), or in one call to a device
   * in another thread.
   */
  suspendAll(policy: 'rnr-nak' | 'drop'): QpInstant[];
  /** Resume these QPs (a failed switchover gives them back); the first failure is thrown. */
  resumeAll(qpns: readonly number[]): QpInstant[];
  close(): Promise<void>;
}

export interface MigrationTarget {
  host: string;
  port: number;
}

export type MigrationPhase = 'connect' | 'precopy' | 'stop-and-copy' | 'switchover' | 'blackout-watch' | 'done';

export interface MigrationProgress {
  phase: MigrationPhase;
  round: number;
  /** Pages sent so far, every round. */
  pagesSent: number;
  /** Pages dirty at the last harvest. */
  dirtyPages: number;
}

export interface MigrateOutOptions {
  /** Stop the guest's workload ("vCPU stop") and return the application's state. */
  pauseGuest(): Promise<Uint8Array>;
  /** Let the guest run again here: the migration failed before the destination confirmed. */
  resumeGuest?(): void | Promise<void>;
  precopy?: Partial<PrecopyPolicy>;
  /** What suspended QPs do with incoming requests (R6); default RNR NAK. */
  suspendPolicy?: 'rnr-nak' | 'drop';
  /** How long the destination watches for each QP's first completion after resume; default 2000 ms. */
  blackoutWatchMs?: number;
  /** Longest wait for any message from the destination; default 30 s. */
  timeoutMs?: number;
  maxFrameBytes?: number;
  /** Close the source VM once the destination confirmed (default true): it must never run again. */
  closeSource?: boolean;
  /**
   * Send a STATE_PREVIEW after round 0 (default true): the destination vets it while the guest
   * still runs, and the save and restore code has run once on each side before the switchover.
   */
  preview?: boolean;
  onProgress?(progress: MigrationProgress): void;
}

/** Send `vm` to the destination listening at `target`. Resolves with the report once it runs there. */
export async function migrateOut(vm: SourceVm, target: MigrationTarget, options: MigrateOutOptions): Promise<MigrationReport> {
  const policy = checkPolicy({ ...DEFAULT_PRECOPY, ...options.precopy });
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const blackoutWatchMs = options.blackoutWatchMs ?? 2000;
  const startedAt = instant();
  const progress: MigrationProgress = { phase: 'connect', round: 0, pagesSent: 0, dirtyPages: 0 };
  const tell = (phase: MigrationPhase): void => {
    progress.phase = phase;
    options.onProgress?.({ ...progress });
  };
  tell('connect');
  const ch = await open(target, timeoutMs, options.maxFrameBytes);
  const logs = [vm.dirtyLog, vm.cpuLog];
  const rounds: RoundReport[] = [];
  const regions = ramRegions(vm.dm);
  const runRound = async (round: number, pages: Uint32Array): Promise<void> => {
    // Let the guest, its traffic and the destination's messages in between rounds, even empty ones.
    await new Promise<void>((resolve) => setImmediate(resolve));
    ch.expectNothing(`before pre-copy round ${round}`);
    const t = instant();
    const sent = await sendPages(vm.dm, round, pages, (f) => ch.send(f), () => ch.expectNothing(`during pre-copy round ${round}`));
    await ch.send(encodeRoundEnd({ round, pages: sent.pages, final: false }));
    rounds.push({ round, ...sent, ms: instant() - t, final: false });
    progress.pagesSent += sent.pages;
  };

  let stopReason: StopReason;
  let carry: Uint32Array;
  let previewMs = 0;
  try {
    await ch.send(encodeHello({ ip: vm.ip, ramBytes: vm.dm.layout.ramBytes, arenaBytes: vm.dm.layout.arenaBytes, regions, blackoutWatchMs }));
    decodeHelloAck((await ch.receive([MessageType.HelloAck], 'after HELLO')).body);
    // Both logs run from before round 0 reads its first page: no write can fall between.
    for (const log of logs) if (!log.enabled) log.start();
    tell('precopy');
    await runRound(0, allPages(regions));
    if (options.preview ?? true) {
      // Taken between turns, like the final state but with the guest running: a snapshot to vet.
      await vm.settle?.();
      const t = instant();
      const frame = encodeStatePreview({ deviceState: vm.device.saveState(), guestState: vm.saveGuestState() });
      previewMs = instant() - t;
      await ch.send(frame);
      // Its verdict before anything else: a VM the destination cannot take is refused while its
      // guest still runs (an ABORT here rejects with the destination's reason).
      await ch.receive([MessageType.PreviewAck], 'after STATE_PREVIEW');
    }
    for (let round = 1; ; round++) {
      carry = harvestAll(logs, ramRegions(vm.dm));
      progress.dirtyPages = carry.length;
      const decision = precopyDecision(policy, round, carry.length);
      if (decision !== null) {
        stopReason = decision;
        break;
      }
      progress.round = round;
      tell('precopy');
      await runRound(round, carry);
    }
  } catch (err) {
    for (const log of logs) log.stop();
    const e = asMigrationError(err, MigrationErrorCode.Closed, 'pre-copy');
    ch.fail(e, true);
    throw e;
  }

  // Stop and copy. From here until CONFIRM, every step is undone on failure.
  tell('stop-and-copy');
  const finalRound = rounds.length;
  const suspended: QpInstant[] = [];
  let paused = false;
  let released = false;
  let pausedAt = 0;
  let sizes = { device: 0, guest: 0, app: 0 };
  const switchStart = instant();
  // Instants of the switchover's steps (source side), for the report's phases.
  const at = { suspended: 0, saved: 0, pagesSent: 0, statesSent: 0, released: 0 };
  let confirm: Confirm;
  try {
    const appState = await options.pauseGuest();
    pausedAt = instant();
    paused = true;
    await vm.settle?.();
    // One synchronous turn: nothing the event loop could deliver (an ACK, a completion, a timer)
    // runs between the device's state, the guest's state and the bytes of the last pages, so the
    // destination gets one consistent instant.
    suspended.push(...vm.suspendAll(options.suspendPolicy ?? 'rnr-nak'));
    at.suspended = instant();
    const deviceState = vm.device.saveState();
    const guestState = vm.saveGuestState();
    at.saved = instant();
    const last = unionPages(carry, harvestAll(logs, ramRegions(vm.dm)));
    const frames: Uint8Array[] = [];
    const t = instant();
    const sent: PagesSent = readPages(vm.dm, finalRound, last, (f) => frames.push(f));
    // End of the synchronous turn.
    for (const f of frames) await ch.send(f);
    await ch.send(encodeRoundEnd({ round: finalRound, pages: sent.pages, final: true }));
    rounds.push({ round: finalRound, ...sent, ms: instant() - t, final: true });
    progress.pagesSent += sent.pages;
    at.pagesSent = instant();
    await ch.send(encodeFrame(MessageType.DeviceState, deviceState));
    await ch.send(encodeFrame(MessageType.GuestState, guestState));
    await ch.send(encodeFrame(MessageType.AppState, appState));
    sizes = { device: deviceState.length, guest: guestState.length, app: appState.length };
    at.statesSent = instant();
    ch.expectNothing('before the switchover');
    tell('switchover');
    await vm.releaseAddress();
    released = true;
    at.released = instant();
    await ch.send(encodeSwitchover({ guestPausedAt: pausedAt, suspended }));
    confirm = decodeConfirm((await ch.receive([MessageType.Confirm], 'while the destination restores')).body);
  } catch (err) {
    const e = asMigrationError(err, MigrationErrorCode.Switchover, 'stop-and-copy');
    ch.fail(e, true);
    for (const log of logs) log.stop();
    try {
      await rollBack(vm, options, { released, suspended, paused });
    } catch (rb) {
      throw new MigrationError(e.code, `${e.message}; then ${(rb as Error).message}`, { cause: e });
    }
    throw e;
  }

  // Committed: the VM runs on the destination. Nothing here may resume it on the source.
  const switchoverMs = instant() - switchStart;
  for (const log of logs) log.stop();
  if (options.closeSource ?? true) await vm.close();
  tell('blackout-watch');
  let blackout: BlackoutSummary;
  try {
    const b = decodeBlackout((await ch.receive([MessageType.Blackout], 'after CONFIRM', blackoutWatchMs + timeoutMs)).body);
    blackout = summarizeBlackout(suspended, b.firstCompletion);
  } catch {
    // The VM moved; only the measurement is lost.
    blackout = summarizeBlackout(suspended, []);
  }
  await ch.close();
  tell('done');
  return {
    ip: vm.ip,
    rounds,
    stopReason,
    pagesMoved: rounds.reduce((n, r) => n + r.pages, 0),
    bytesMoved: ch.bytesSent + ch.bytesReceived,
    deviceStateBytes: sizes.device,
    guestStateBytes: sizes.guest,
    appStateBytes: sizes.app,
    downtimeMs: confirm.guestResumedAt - pausedAt,
    switchoverMs,
    blackout,
    phases: switchoverPhases(previewMs, confirm, { start: switchStart, paused: pausedAt, ...at }),
    totalMs: instant() - startedAt,
  };
}

async function open(target: MigrationTarget, timeoutMs: number, maxFrameBytes?: number): Promise<Channel> {
  const socket = connect({ host: target.host, port: target.port });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new MigrationError(MigrationErrorCode.Timeout, `no connection to ${target.host}:${target.port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new MigrationError(MigrationErrorCode.Closed, `connecting to ${target.host}:${target.port}: ${err.message}`, { cause: err }));
    });
  });
  return new Channel(socket, { timeoutMs, maxFrameBytes });
}

/** Give the VM back to the source: address, QPs, guest, in the reverse order of taking it. */
async function rollBack(vm: SourceVm, options: MigrateOutOptions, done: { released: boolean; suspended: readonly QpInstant[]; paused: boolean }): Promise<void> {
  const problems: string[] = [];
  try {
    await vm.settle?.();
  } catch (err) {
    problems.push(`the device: ${(err as Error).message}`);
  }
  if (done.released) {
    try {
      await vm.bindAddress();
    } catch (err) {
      problems.push(`rebinding ${vm.ip}: ${(err as Error).message}`);
    }
  }
  for (const q of done.suspended) {
    try {
      // One at a time: a QP that cannot be resumed does not keep the others suspended.
      vm.resumeAll([q.qpn]);
    } catch (err) {
      problems.push(`resuming QP ${q.qpn}: ${(err as Error).message}`);
    }
  }
  if (done.paused) {
    try {
      await options.resumeGuest?.();
    } catch (err) {
      problems.push(`resuming the guest: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new MigrationError(MigrationErrorCode.Switchover, `the migration failed and the source could not take the VM back fully: ${problems.join('; ')}`);
}

function switchoverPhases(
  previewMs: number, confirm: Confirm,
  at: { start: number; paused: number; suspended: number; saved: number; pagesSent: number; statesSent: number; released: number },
): SwitchoverPhases {
  return {
    previewMs,
    vetMs: confirm.vetMs,
    pauseMs: at.paused - at.start,
    suspendMs: at.suspended - at.paused,
    saveMs: at.saved - at.suspended,
    finalPagesMs: at.pagesSent - at.saved,
    stateSendMs: at.statesSent - at.pagesSent,
    releaseMs: at.released - at.statesSent,
    restoreMs: confirm.restoreMs,
    resumeMs: confirm.resumeMs,
  };
}
