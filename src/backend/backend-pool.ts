// Durable device backends over a pool of worker threads (piscina). Each device's guest memory and
// control block are made here, on the thread that drives the device (the VMM's side: here the
// guest library, over a TransportProxy); the device itself runs in a pool worker
// (backend-task.ts, device-backend.ts). When that worker dies — a crash, an uncaught error,
// terminate — piscina replaces the thread, and this pool clears the dead thread's ownership word
// and starts every device it ran again from the device's journal, on a worker that lives. The
// guest keeps its rings, buffers and posted work through it; its configuration calls wait for
// the new backend, its kicks are picked up by it, and the peers' QPs see a retransmission.
//
// A device that cannot be started again (its journal refused, or restarts failing
// `maxRestarts` times in a row) is lost: its status reads NEEDS_RESET, which the driver sees.
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';

/** What piscina tells a load balancer of each worker (its PiscinaWorker, not exported by name). */
interface PiscinaWorker {
  readonly id: number;
  readonly currentUsage: number;
  readonly terminating: boolean;
  readonly destroyed: boolean;
}
import { DeviceMemory } from '../memory/device-memory.js';
import type { SoftRoceOptions } from '../nic/soft/index.js';
import { DeviceStatus } from '../virtio/status.js';
import type { BackendTaskCounters, BackendTaskInput, BackendTaskReady } from './backend-task.js';
import { ControlBlock, DEFAULT_SLOT_BYTES, W } from './control-block.js';
import type { BackendSpec, StartTimings } from './device-backend.js';
import { BackendError, BackendErrorCode } from './errors.js';
import { TransportProxy } from './transport-proxy.js';
import { HangWatchdog, type WatchedThread } from '../host/pool/watchdog.js';

const BACKEND_TASK = new URL('./backend-task.js', import.meta.url).href;
const MiB = 1024 * 1024;
const DEFAULT_RAM_BYTES = 32 * MiB;
const ARENA_BYTES = 8 * MiB;
const DEFAULT_DEVICES_PER_WORKER = 16;
const DEFAULT_MAX_RESTARTS = 3;
const DEFAULT_HANG_MS = 30_000;

export interface BackendPoolOptions {
  /** Worker threads; default the machine's available parallelism. */
  workers?: number;
  /** Devices one worker runs at once; default 16. */
  devicesPerWorker?: number;
  /** Failed restarts in a row after which a device is given up; default 3. */
  maxRestarts?: number;
  /** Let DurableDevice.injectFault() and stall() act in a worker (tests). */
  debugOps?: boolean;
  /**
   * A worker running devices that leaves a ping unanswered this long is terminated, and its
   * devices come back from their journals elsewhere (src/host/pool/watchdog.ts); 0: never.
   * Default 30 s.
   */
  hangMs?: number;
}

export interface OpenDeviceOptions {
  /** The VM's IPv4 address (its GID): the backend's socket binds it. */
  ip: string;
  /** UDP port; default 4791. */
  port?: number;
  /** Guest RAM, one region at GPA 0; default 32 MiB. */
  ramBytes?: number;
  provider?: SoftRoceOptions;
  batched?: boolean;
  /** Capacity of each of the journal's two slots; default 4 MiB. */
  slotBytes?: number;
  /** How long a configuration call waits for a backend; default 10 s. */
  callTimeoutMs?: number;
  /** Keep the journal (default); false prices durability and gives up the device with its worker. */
  journal?: boolean;
}

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
  /** Set when the run ended: 'closed', or why it was lost; and when this thread learned of it. */
  ended: string | null;
  endedAt: number | null;
}

export class BackendPool {
  private readonly pool: Piscina;
  private readonly devices = new Set<DurableDevice>();
  readonly maxRestarts: number;
  private readonly debugOps: boolean;
  private readonly perWorker: number;
  private readonly capacity: number;
  /** Devices being opened (counted against the capacity before they run). */
  private opening = 0;
  private readonly watchdog: HangWatchdog | null;
  /** Threads that have run a backend (booted, modules loaded), and restarts being placed now. */
  private readonly booted = new Set<number>();
  private restoring = 0;
  private avoid = -1;
  /** Threads the watchdog terminated, and how long they had been silent (ms). */
  readonly hung = new Map<number, number>();
  private closed = false;

  constructor(options: BackendPoolOptions = {}) {
    const workers = options.workers ?? availableParallelism();
    const perWorker = options.devicesPerWorker ?? DEFAULT_DEVICES_PER_WORKER;
    for (const [name, v] of [['workers', workers], ['devicesPerWorker', perWorker]] as const) {
      if (!Number.isSafeInteger(v) || v < 1 || v > 256) throw new RangeError(`${name} must be an integer in [1, 256], got ${v}`);
    }
    this.maxRestarts = options.maxRestarts ?? DEFAULT_MAX_RESTARTS;
    this.debugOps = options.debugOps ?? false;
    this.perWorker = perWorker;
    this.capacity = workers * perWorker;
    this.pool = new Piscina({
      filename: BACKEND_TASK,
      minThreads: workers,
      maxThreads: workers,
      concurrentTasksPerWorker: perWorker,
      // A backend task runs for its device's life; the worker's event loop must never block.
      atomics: 'disabled',
      idleTimeout: Infinity,
      loadBalancer: (_task, threads) => this.pick(threads as PiscinaWorker[], perWorker) as never,
    });
    // A worker that dies is reported through its tasks (each device restarts); nothing else to do.
    this.pool.on('error', () => {});
    const hangMs = options.hangMs ?? DEFAULT_HANG_MS;
    this.watchdog = hangMs > 0 ? new HangWatchdog(hangMs, () => this.watched(), (id, ms) => this.terminateHung(id, ms)) : null;
  }

  /** One ping per worker thread that runs devices, answered by that thread's event loop. */
  private watched(): WatchedThread[] {
    const one = new Map<number, DurableDevice>();
    for (const d of this.devices) if (d.serving && !one.has(d.threadId)) one.set(d.threadId, d);
    return [...one.values()].map((d) => ({ threadId: d.threadId, ping: () => d.ping() }));
  }

  private terminateHung(threadId: number, silentMs: number): void {
    const worker = this.threads().find((w) => w.threadId === threadId);
    if (worker === undefined) return;
    this.hung.set(threadId, silentMs);
    void worker.terminate();
  }

  /**
   * Where the next backend runs: the least busy worker with room (other than `avoid`, the one a
   * device is being moved off). A device coming back from its
   * journal goes to a worker that has already run a backend if one has room: the replacement
   * piscina starts for a dead thread is least busy but would first have to boot (Node, the
   * modules, the Wasm kernels), which would lengthen the device's outage several times over.
   */
  private pick(threads: PiscinaWorker[], perWorker: number): PiscinaWorker | null {
    const avoid = this.avoid;
    const usable = threads.filter((w) => !w.terminating && !w.destroyed && w.currentUsage < perWorker && w.id !== avoid);
    const booted = this.restoring > 0 ? usable.filter((w) => this.booted.has(w.id)) : [];
    const from = booted.length > 0 ? booted : usable;
    let best: PiscinaWorker | null = null;
    for (const w of from) if (best === null || w.currentUsage < best.currentUsage) best = w;
    return best;
  }

  /** A new device with its own guest memory, running in a pool worker, and the driver's transport to it. */
  async open(o: OpenDeviceOptions): Promise<DurableDevice> {
    if (this.closed) throw new BackendError(BackendErrorCode.Closed, 'the backend pool is closed');
    // Refused at once rather than queued by piscina until a device closes: the pool is bounded.
    if (this.devices.size + this.opening >= this.capacity) {
      throw new BackendError(BackendErrorCode.Full, `${this.capacity / this.perWorker} workers run ${this.perWorker} devices each already`);
    }
    const ramBytes = o.ramBytes ?? DEFAULT_RAM_BYTES;
    const dm = DeviceMemory.create({ ramBytes, arenaBytes: ARENA_BYTES });
    dm.addRegion(0, ramBytes);
    const control = ControlBlock.create(o.slotBytes ?? DEFAULT_SLOT_BYTES);
    const spec: BackendSpec = { ip: o.ip, port: o.port, memory: dm.memory, layout: dm.layout, control: control.buffer, provider: o.provider, batched: o.batched, journal: o.journal };
    const device = new DurableDevice(this, dm, control, spec);
    this.opening++;
    try {
      await device.start('fresh');
    } finally {
      this.opening--;
    }
    this.devices.add(device);
    try {
      device.attachDriver(o.callTimeoutMs);
    } catch (err) {
      await device.close();
      throw err;
    }
    return device;
  }

  /** @internal Start one backend task; resolves once it serves, with the promise of its end. */
  async runTask(spec: BackendSpec, mode: 'fresh' | 'restore', avoid = -1): Promise<{ ready: BackendTaskReady; port: MessagePort; done: Promise<unknown> }> {
    const { port1, port2 } = new MessageChannel();
    const ready = new Promise<BackendTaskReady>((resolve) => port1.on('message', (m: Partial<BackendTaskReady>) => m.ready === true && resolve(m as BackendTaskReady)));
    // piscina places a task in run() when a worker has room (else once one has): `restoring` and
    // `avoid` are what pick() reads then.
    if (mode === 'restore') this.restoring++;
    this.avoid = avoid;
    let done: Promise<unknown>;
    try {
      done = this.pool.run({ spec, mode, port: port2, debugOps: this.debugOps } satisfies BackendTaskInput, { transferList: [port2] }) as Promise<unknown>;
    } finally {
      if (mode === 'restore') this.restoring--;
      this.avoid = -1;
    }
    try {
      const served = await Promise.race([ready, done.then(() => { throw new Error('the backend task ended before it served'); })]);
      this.booted.add(served.threadId);
      return { ready: served, port: port1, done };
    } catch (err) {
      port1.close();
      throw err;
    }
  }

  /** The worker threads of the pool. */
  threads(): Worker[] {
    return this.pool.threads as Worker[];
  }

  /** Terminate the worker running `device` (tests, and an operator taking a thread down). Resolves once it is gone. */
  async terminateWorkerOf(device: DurableDevice): Promise<number> {
    const id = device.threadId;
    const worker = this.threads().find((w) => w.threadId === id);
    if (worker === undefined) throw new BackendError(BackendErrorCode.Closed, `no worker thread ${id}`);
    await worker.terminate();
    return id;
  }

  /**
   * Even the devices out over the workers: while the busiest worker runs two or more devices more
   * than the least busy, move one of its devices to another (DurableDevice.move). After a worker
   * died, its devices came back on the survivors and its replacement runs none. Returns the moves.
   */
  async rebalance(): Promise<{ device: string; from: number; to: number }[]> {
    const moves: { device: string; from: number; to: number }[] = [];
    for (let guard = 0; guard < this.capacity; guard++) {
      const load = new Map<number, DurableDevice[]>(this.threads().map((w) => [w.threadId, []]));
      for (const d of this.devices) if (d.serving) load.get(d.threadId)?.push(d);
      const byLoad = [...load.entries()].sort((x, y) => y[1].length - x[1].length);
      const [busiest, idlest] = [byLoad[0], byLoad.at(-1)];
      if (busiest === undefined || idlest === undefined || busiest[1].length - idlest[1].length < 2) break;
      const device = busiest[1][0];
      await device.move();
      moves.push({ device: device.ip, from: busiest[0], to: device.threadId });
    }
    return moves;
  }

  /** @internal */
  forget(device: DurableDevice): void {
    this.devices.delete(device);
  }

  /** Close every device, then the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchdog?.stop();
    await Promise.allSettled([...this.devices].map((d) => d.close()));
    await this.pool.destroy();
  }
}

/** The driver's handle on one device running in the pool. */
export class DurableDevice {
  /** Every backend run of this device, the current one last. */
  readonly runs: BackendRun[] = [];
  private port: MessagePort | null = null;
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
  async counters(): Promise<BackendTaskCounters['counters']> {
    const port = this.port;
    if (port === null) throw new BackendError(BackendErrorCode.Closed, 'no backend runs the device now');
    return new Promise((resolve, reject) => {
      const gone = () => reject(new BackendError(BackendErrorCode.Closed, 'the backend stopped before it answered'));
      const take = (m: Partial<BackendTaskCounters>) => {
        if (m.counters === undefined) return;
        port.off('message', take);
        port.off('close', gone);
        resolve(m.counters);
      };
      port.on('message', take);
      port.once('close', gone);
      port.postMessage({ op: 'counters' });
    });
  }

  /** Tests only (a pool made with debugOps): throw an uncaught error in the device's worker. */
  injectFault(): void {
    this.port?.postMessage({ op: 'faultLater' });
  }

  /**
   * Tests only (a pool made with debugOps): end the device's worker at its next atomic: right after
   * the intent is committed (before the atomic runs), or `after` it ran (before its result is committed).
   */
  crashAtNextAtomic(after = false): void {
    this.port?.postMessage({ op: 'crashAtNextAtomic', after });
  }

  /** Tests only (a pool made with debugOps): block the device's worker thread for `ms`. */
  stall(ms: number): void {
    this.port?.postMessage({ op: 'stall', ms });
  }

  /** Whether a backend runs the device now. */
  get serving(): boolean {
    return this.port !== null;
  }

  /** Resolves when the device's worker answers from its event loop (the watchdog's ping). */
  ping(): Promise<void> {
    const port = this.port;
    if (port === null) return Promise.reject(new BackendError(BackendErrorCode.Closed, 'no backend runs the device now'));
    return new Promise((resolve) => {
      const take = (m: { pong?: unknown }) => {
        if (m.pong !== true) return;
        port.off('message', take);
        resolve();
      };
      port.on('message', take);
      port.postMessage({ op: 'ping' });
    });
  }

  /**
   * Move the device to another worker: its backend stops cleanly (its last turn committed, the
   * address released) and a backend on the least busy other worker takes it up from the journal.
   * The guest sees a pause, the peers a retransmission.
   */
  async move(): Promise<void> {
    await this.settled();
    if (this.closing || this.port === null) throw new BackendError(BackendErrorCode.Closed, 'the device does not run');
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
    const port = this.port;
    if (port === null) return;
    this.port = null;
    const closed = new Promise<void>((resolve) => port.once('close', () => resolve()));
    port.postMessage({ op: 'close' });
    await closed;
  }

  /** @internal Start a backend for the device; a run that ends without close() starts another. */
  async start(mode: 'fresh' | 'restore', avoid = -1): Promise<void> {
    const startedAt = performance.now();
    const { ready, port, done } = await this.owner.runTask(this.spec, mode, avoid);
    const run: BackendRun = { threadId: ready.threadId, epoch: ready.epoch, mode, startedAt, servingAt: performance.now(), timings: ready.timings, inDoubt: ready.inDoubt, atomic: ready.atomic, ended: null, endedAt: null };
    this.runs.push(run);
    this.port = port;
    done.then(
      () => {
        run.ended = 'closed';
        run.endedAt = performance.now();
      },
      (err: unknown) => {
        run.ended = (err as Error)?.message ?? String(err);
        run.endedAt = performance.now();
        port.close();
        if (this.port === port) this.port = null;
        // The dead thread cannot release the device itself.
        this.control.release(run.threadId);
        if (!this.closing && !this.moving) this.restart();
      },
    );
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
    this.owner.forget(this);
  }
}
