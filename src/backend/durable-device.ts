// The driver's handle on one durable device (backend-pool.ts runs it): the device's guest memory
// and control block, made on the driver's thread, the transport the guest library drives, and the
// backend runs behind it. A run that ends other than by close() — its worker exited, or the backend
// failed — starts the device again from its journal; a device that cannot be started, whose state
// outgrew its journal, or whose backends keep dying (a crash loop) is given up (NEEDS_RESET).
// move() takes the device to another worker through the journal.
import { PortClient } from '../host/pool/port-channel.js';
import type { QpAttributes } from '../nic/verbs.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import { MemoryError, MemoryErrorCode } from '../memory/errors.js';
import type { Region } from '../memory/region-table.js';
import { DeviceStatus } from '../virtio/status.js';
import type { BackendPool } from './backend-pool.js';
import type { BackendTaskCounters, BackendTaskReady } from './backend-task.js';
import { type ControlBlock, W } from './control-block.js';
import type { BackendSpec, ProviderCounters, StartTimings } from './device-backend.js';
import type { DeviceLogs } from './device-logs.js';
import { BackendError, BackendErrorCode } from './errors.js';
import { registerCodedError } from './call-channel.js';
import { Journal } from './journal.js';
import { decodeJournalEntry } from './journal-entry.js';
import type { SocketSide } from './socket-side.js';
import { TransportProxy } from './transport-proxy.js';

// The backend's memory errors (a region-table change it refused) arrive as what they were.
registerCodedError('MemoryError', MemoryErrorCode, (code, message) => new MemoryError(code, message));

/** How long ready() waits for a backend to answer. */
const READY_MS = 10_000;

/** Flushes saveState() tries before it gives up on a device that keeps changing under it. */
const SAVE_ATTEMPTS = 8;

/** A device whose backends end this many times within CRASH_LOOP_MS is given up, not restarted again. */
const CRASH_LOOP_RUNS = 10;
const CRASH_LOOP_MS = 10_000;

/** One backend start and how it went, for tests and logs. */
export interface BackendRun {
  threadId: number;
  epoch: number;
  mode: 'fresh' | 'restore';
  /** When the task was asked for and when it served (performance.now() of this thread, ms). */
  startedAt: number;
  servingAt: number;
  /** The backend's own account of its start: restoring, binding the address. */
  timings: StartTimings;
  /** QPs the backend moved to ERR as it started: an atomic of theirs was in doubt. */
  inDoubt: number[];
  /** The atomic the journal's entry was committed before, and how the start settled it. */
  atomic: BackendTaskReady['atomic'];
  /** The used entries the journal's entry held unpublished, and how many the dead backend had published. */
  restoredUsed: BackendTaskReady['restoredUsed'];
  /** Set when the run ended: 'closed', or why it was lost; and when this thread learned of it. */
  ended: string | null;
  endedAt: number | null;
}

/** The driver's handle on one device running in the pool. */
export class DurableDevice {
  /** Every backend run of this device, the current one last. */
  readonly runs: BackendRun[] = [];
  /** Calls to the running backend's task (its port); null while none runs. */
  private client: PortClient | null = null;
  private proxy: TransportProxy | null = null;
  private closing = false;
  private moving = false;
  private restarting: Promise<void> | null = null;
  /** Why the device was given up, or null while it serves. */
  lost: Error | null = null;

  /** @internal */
  constructor(
    private readonly owner: BackendPool,
    /** The guest's memory: the driver builds its rings and buffers here. */
    readonly dm: DeviceMemory,
    readonly control: ControlBlock,
    private readonly spec: BackendSpec,
    /** The device's dirty logs (R4): the backend marks `logs.device`, the guest's writes go to `logs.cpu`. */
    readonly logs: DeviceLogs,
    /** The VM's socket, when this thread holds it (socket: 'main'). */
    readonly socketSide: SocketSide | null = null,
  ) {}

  get ip(): string {
    return this.spec.ip;
  }

  /** The driver's transport to the device (RdmaGuest.open takes it). */
  get transport(): TransportProxy {
    if (this.proxy === null) throw new BackendError(BackendErrorCode.Closed, 'the device has no driver transport yet');
    return this.proxy;
  }

  /** The thread running the device now. */
  get threadId(): number {
    return this.runs.at(-1)?.threadId ?? -1;
  }

  /**
   * For each time the device came back: how long from the main thread learning its backend was
   * gone to the new backend serving (restoring the journal, binding the address), in ms.
   */
  get outages(): { thread: number; reason: string; restoredOn: number; ms: number; restoreMs: number; bindMs: number }[] {
    const out = [];
    for (let i = 1; i < this.runs.length; i++) {
      const was = this.runs[i - 1];
      const now = this.runs[i];
      if (now.mode === 'restore' && was.endedAt !== null) {
        out.push({ thread: was.threadId, reason: was.ended ?? '', restoredOn: now.threadId, ms: now.servingAt - was.endedAt, restoreMs: now.timings.restoreMs, bindMs: now.timings.bindMs });
      }
    }
    return out;
  }

  /** Times the device was started again from its journal. */
  get restarts(): number {
    return this.runs.filter((r) => r.mode === 'restore').length;
  }

  /** Resolves once a restart under way has finished (at once when none is). */
  async settled(): Promise<void> {
    while (this.restarting !== null) await this.restarting;
  }

  /** @internal */
  attachDriver(timeoutMs?: number): void {
    this.proxy = new TransportProxy(this.control, this.dm.memory, timeoutMs);
  }

  /** The backend's counters (commits, journal entry size, packets the commit gate held and released). */
  counters(): Promise<BackendTaskCounters> {
    return this.call<BackendTaskCounters>('counters');
  }

  /** Tests only (a pool made with debugOps): throw an uncaught error in the device's worker. */
  injectFault(): void {
    this.debugCall('faultLater');
  }

  /**
   * Tests only (a pool made with debugOps): end the device's worker at its next atomic: right after
   * the intent is committed (before the atomic runs), or `after` it ran (before its result is committed).
   */
  crashAtNextAtomic(after = false): void {
    this.debugCall('crashAtNextAtomic', { after });
  }

  /** Tests only (a pool made with debugOps): end the device's worker at its next commit, before it writes. */
  crashAtNextCommit(): void {
    this.debugCall('crashAtNextCommit');
  }

  /** Tests only (a pool made with debugOps): block the device's worker thread for `ms`. */
  stall(ms: number): void {
    this.debugCall('stall', { ms });
  }

  /** A test op whose answer nobody waits for (the thread it asks to fail may never give one). */
  private debugCall(op: string, args: Record<string, unknown> = {}): void {
    this.client?.call(op, args).catch(() => {});
  }

  private call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.client === null) return Promise.reject(new BackendError(BackendErrorCode.Closed, 'no backend runs the device now'));
    return this.client.call<T>(op, args);
  }

  /** Whether a backend runs the device now. */
  get serving(): boolean {
    return this.client !== null;
  }

  // ---- what a VMM needs to migrate the device (src/backend/durable-vm.ts) ----------------------

  queryQp(qpn: number): QpAttributes {
    return this.transport.vmmCall('queryQp', [qpn]) as QpAttributes;
  }

  /** The provider's counters (events, drops by reason, internal errors contained), from its worker. */
  async providerCounters(): Promise<{ events: Map<string, number>; dropped: Map<string, number>; internalErrors: number }> {
    const c = await this.call<ProviderCounters>('providerCounters');
    return { events: new Map(c.events), dropped: new Map(c.dropped), internalErrors: c.internalErrors };
  }

  /** The keys of every MR the device holds, [lkey, rkey]. */
  mrKeys(): Promise<[number, number][]> {
    return this.call<[number, number][]>('mrKeys');
  }

  /** R6: suspend every QP that can be, in one call; their QPNs, ascending (none stays suspended if it throws). */
  suspendAll(policy: 'rnr-nak' | 'drop'): number[] {
    return this.transport.vmmCall('suspendAll', [policy]) as number[];
  }

  resumeAll(qpns: readonly number[]): void {
    this.transport.vmmCall('resumeAll', [[...qpns]]);
  }

  /**
   * The device's state (R9), as the backend committed it right after publishing everything it
   * had done: the journal's entry, read here from shared memory. Synchronous, as a VMM takes it
   * with the guest stopped; BackendError if the device runs without a journal, or kept changing
   * through every attempt (an entry with used elements or an atomic not yet published).
   */
  saveState(): Uint8Array {
    const journal = new Journal(this.control);
    for (let attempt = 0; attempt < SAVE_ATTEMPTS; attempt++) {
      this.transport.vmmCall('flush');
      let latest: ReturnType<Journal['latest']>;
      try {
        latest = journal.latest();
      } catch (err) {
        // The backend committed twice while this thread read the slot: read again.
        if (err instanceof BackendError && err.code === BackendErrorCode.BadJournal) continue;
        throw err;
      }
      if (latest === null) throw new BackendError(BackendErrorCode.BadJournal, 'the device runs without a journal: its state cannot be taken');
      const entry = decodeJournalEntry(latest.payload);
      if (entry.unpublished.length === 0 && entry.intent === null) return entry.deviceState;
    }
    throw new BackendError(BackendErrorCode.Closed, `the device kept changing through ${SAVE_ATTEMPTS} attempts to take its state`);
  }

  /**
   * When each of `qpns` first completed something in the backend, watched for up to `watchMs`
   * (the QP blackouts of a migrated device). Times are instant()s (src/migration/report.ts).
   */
  async firstCompletions(qpns: readonly number[], watchMs: number): Promise<Map<number, number>> {
    return new Map(await this.call<[number, number][]>('firstCompletions', { qpns: [...qpns], watchMs }));
  }

  /**
   * Resolves once a backend serves the device and answers a ping from its event loop. Await it
   * before synchronous calls made outside the guest's own use (a migration's, hotplug): they block
   * this thread in Atomics.wait, and a restart of the backend needs this thread (piscina places
   * the task from here). A worker that is dying before this thread has heard of it fails the ping
   * once it is gone, and then its restart is awaited. Throws if the device was given up, or no
   * backend answered within 10 s.
   */
  async ready(): Promise<void> {
    const deadline = performance.now() + READY_MS;
    for (;;) {
      await this.settled();
      if (this.lost !== null) throw this.lost;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BackendError(BackendErrorCode.Timeout, `no backend of ${this.ip} answered within ${READY_MS} ms`)), Math.max(0, deadline - performance.now()));
      });
      try {
        await Promise.race([this.ping(), late]);
        return;
      } catch (err) {
        if (performance.now() > deadline) throw err;
        // Its backend stopped: the restart begins once this thread hears of it.
        await new Promise((resolve) => setTimeout(resolve, 2));
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /**
   * Hotplug (R2): plug guest RAM at guest-physical `start`. This thread owns the memory map and
   * reserves the backing; the backend puts the region into the shared table between its passes
   * and re-maps the all-memory MRs, committed before it answers.
   */
  async plugRegion(start: number, size: number): Promise<Region> {
    await this.ready();
    const region = this.dm.reserveRegion(start, size);
    try {
      this.callAgainIfInterrupted('plugRegion', [{ ...region }]);
    } catch (err) {
      // Not in the table: the plug did not happen. In it: only the re-map failed, and the
      // region is the guest's; the next plug or unplug re-maps again.
      if (!this.dm.guest.regions.list().some((r) => r.gpa === region.gpa)) this.dm.unreserveRegion(region);
      throw err;
    }
    return region;
  }

  /** Unplug the region at `start`: out of the table and the MRs first (in the backend), then its backing is zeroed and freed here. */
  async unplugRegion(start: number): Promise<void> {
    await this.ready();
    const region = this.dm.guest.regions.list().find((r) => r.gpa === start);
    if (region === undefined) throw new MemoryError(MemoryErrorCode.NoSuchRegion, `no region starts at ${start}`);
    this.callAgainIfInterrupted('unplugRegion', [start]);
    this.dm.releaseRegion(region);
  }

  /** A backend call that is idempotent: made again if the backend died during it (INTERRUPTED). */
  private callAgainIfInterrupted(method: string, args: unknown[]): unknown {
    try {
      return this.transport.vmmCall(method, args);
    } catch (err) {
      if (err instanceof BackendError && err.code === BackendErrorCode.Interrupted) return this.transport.vmmCall(method, args);
      throw err;
    }
  }

  /** Whether the VM's address is released (a migration gave it up); a restart leaves it so. */
  get addressReleased(): boolean {
    return this.spec.unbound === true;
  }

  /** R7, source side: give up the VM's address once the sends already made have left. */
  async releaseAddress(): Promise<void> {
    if (this.socketSide !== null) await this.socketSide.release();
    else await this.call('releaseAddress');
    this.spec.unbound = true;
  }

  /** R7: take the address (the destination after a restore, or the source again after a failed switchover). */
  async bindAddress(): Promise<void> {
    if (this.socketSide !== null) await this.socketSide.bind();
    else await this.call('bindAddress');
    this.spec.unbound = false;
  }

  /** Resolves when the device's worker answers from its event loop (the watchdog's ping). */
  async ping(): Promise<void> {
    await this.call('ping');
  }


  /**
   * Move the device to another worker: its backend stops cleanly (its last turn committed, the
   * address released) and a backend on the least busy other worker takes it up from the journal.
   * The guest sees a pause, the peers a retransmission.
   */
  async move(): Promise<void> {
    await this.settled();
    if (this.closing || this.client === null) throw new BackendError(BackendErrorCode.Closed, 'the device does not run');
    const from = this.threadId;
    this.moving = true;
    try {
      await this.stopBackend();
      await this.start('restore', from);
    } catch (err) {
      // Wherever it failed, the journal still holds the device: bring it back as after a crash.
      this.restart();
      throw err;
    } finally {
      this.moving = false;
    }
  }

  /** Ask the backend to stop and wait until its task has ended. */
  private async stopBackend(): Promise<void> {
    const client = this.client;
    if (client === null) return;
    this.client = null;
    await client.call('close').catch(() => {});
    await client.closed;
  }

  /** @internal Start a backend for the device; a run that ends without close() starts another. */
  async start(mode: 'fresh' | 'restore', avoid = -1): Promise<void> {
    const startedAt = performance.now();
    const { ready, port, done } = await this.owner.runTask(this.spec, mode, avoid);
    const run: BackendRun = { threadId: ready.threadId, epoch: ready.epoch, mode, startedAt, servingAt: performance.now(), timings: ready.timings, inDoubt: ready.inDoubt, atomic: ready.atomic, restoredUsed: ready.restoredUsed, ended: null, endedAt: null };
    this.runs.push(run);
    const client = new PortClient(port, `device ${this.spec.ip}`);
    this.client = client;
    done.then(
      () => {
        run.ended = 'closed';
        run.endedAt = performance.now();
      },
      (err: unknown) => {
        run.ended = (err as Error)?.message ?? String(err);
        run.endedAt = performance.now();
        client.fail(new BackendError(BackendErrorCode.Closed, `the backend stopped: ${run.ended}`));
        if (this.client === client) this.client = null;
        // The dead thread cannot release the device itself.
        this.control.release(run.threadId);
        if (this.closing || this.moving) return;
        // A state that outgrew its journal would outgrow it again after every restart.
        if (run.ended.startsWith(`${BackendErrorCode.JournalFull}:`)) this.giveUp(new BackendError(BackendErrorCode.JournalFull, run.ended.slice(BackendErrorCode.JournalFull.length + 2)));
        else if (this.crashLooping()) this.giveUp(new BackendError(BackendErrorCode.Closed, `its backend ended ${CRASH_LOOP_RUNS} times within ${CRASH_LOOP_MS / 1000} s; the last time: ${run.ended}`));
        else this.restart();
      },
    );
  }

  /** Whether the device's backends keep dying: CRASH_LOOP_RUNS ended within CRASH_LOOP_MS. */
  private crashLooping(): boolean {
    const now = performance.now();
    return this.runs.filter((r) => r.ended !== null && r.ended !== 'closed' && r.endedAt !== null && now - r.endedAt < CRASH_LOOP_MS).length >= CRASH_LOOP_RUNS;
  }

  private restart(): void {
    if (this.restarting !== null) return;
    this.restarting = (async () => {
      let failures = 0;
      for (;;) {
        try {
          await this.start('restore');
          return;
        } catch (err) {
          failures++;
          const journalRefused = err instanceof BackendError && err.code === BackendErrorCode.BadJournal;
          if (journalRefused || failures >= this.owner.maxRestarts || this.closing) {
            this.giveUp(err as Error);
            return;
          }
        }
      }
    })().finally(() => (this.restarting = null));
  }

  /** No backend can run the device: the driver sees NEEDS_RESET, and whatever it waits for wakes. */
  private giveUp(err: Error): void {
    this.lost = err;
    void this.socketSide?.close();
    this.control.store(W.status, this.control.load(W.status) | DeviceStatus.NEEDS_RESET);
    const bells = this.control.doorbells;
    if (bells !== null) {
      const words = new Int32Array(this.dm.memory.buffer, bells.base, 2 * bells.numQueues + 2);
      for (let i = 0; i < words.length; i++) {
        Atomics.add(words, i, 1);
        Atomics.notify(words, i);
      }
    }
  }

  /** Stop the device's backend (the device's state stays in its journal). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.restarting;
    await this.stopBackend();
    await this.socketSide?.close();
    this.owner.forget(this);
  }
}
