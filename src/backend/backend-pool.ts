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
import { DeviceMemory } from '../memory/device-memory.js';
import type { Link } from '../nic/link.js';
import type { SoftRoceOptions } from '../nic/soft/index.js';
import { HangWatchdog, type WatchedThread } from '../host/pool/watchdog.js';
import type { BackendTaskInput, BackendTaskReady } from './backend-task.js';
import { ControlBlock, DEFAULT_SLOT_BYTES } from './control-block.js';
import type { BackendSpec } from './device-backend.js';
import { DeviceLogs } from './device-logs.js';
import { DurableDevice } from './durable-device.js';
import { BackendError, BackendErrorCode } from './errors.js';
import { Journal } from './journal.js';
import { journalEntryChunks } from './journal-entry.js';
import { SocketSide } from './socket-side.js';

export { DurableDevice, type BackendRun } from './durable-device.js';

/** What piscina tells a load balancer of each worker (its PiscinaWorker, not exported by name). */
interface PiscinaWorker {
  readonly id: number;
  readonly currentUsage: number;
  readonly terminating: boolean;
  readonly destroyed: boolean;
}

/** The task's CommonJS entry (backend-task-entry.cts: why not backend-task.js itself). */
const BACKEND_TASK = new URL('./backend-task-entry.cjs', import.meta.url).href;
const MiB = 1024 * 1024;
const DEFAULT_RAM_BYTES = 32 * MiB;
const ARENA_BYTES = 8 * MiB;
const DEFAULT_DEVICES_PER_WORKER = 16;
const DEFAULT_MAX_RESTARTS = 3;
const DEFAULT_HANG_MS = 30_000;
/**
 * Guest-physical space the dirty logs cover at least, so memory hotplugged below it is logged
 * (a 128 KiB bitmap; a harvest scans it in microseconds). A write above it is not, and makes the
 * next pre-copy round resend everything.
 */
const LOGGED_GPA_BYTES = 4 * 1024 * MiB;
/** Each direction's packet ring when this thread holds the socket (socket: 'main'). */
const RING_BYTES = 4 * MiB;

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
  /** The guest RAM window; default 32 MiB. */
  ramBytes?: number;
  /**
   * Guest RAM plugged at GPA 0 from the start; default all of the window. The rest is room for
   * hotplug (DurableDevice.plugRegion).
   */
  regionBytes?: number;
  provider?: SoftRoceOptions;
  batched?: boolean;
  /** Capacity of each of the journal's two slots; default 4 MiB. */
  slotBytes?: number;
  /** How long a configuration call waits for a backend; default 10 s. */
  callTimeoutMs?: number;
  /** Keep the journal (default); false prices durability and gives up the device with its worker. */
  journal?: boolean;
  /**
   * Who holds the VM's UDP socket: `main`, this thread (default; socket-side.ts), which passes
   * packets to and from the backend through rings in shared memory and keeps the address bound
   * across restarts; or the worker running the device (a restarted backend binds the address
   * again). Node 20 can abort the whole process when a worker is terminated while its UDP socket
   * receives (UDPWrap::OnRecv during the worker's teardown, seen in this project's tests), which a
   * device that is to survive its worker's death cannot have: hence the default.
   */
  socket?: 'worker' | 'main';
  /**
   * A device that migrated here (durable-vm.ts): its guest memory, the RAM already copied in, and
   * its state (R9). The journal starts with that state and the backend takes it up as after a
   * crash; its QPs come back as they were saved (SUSPENDED ones stay so until resumed).
   */
  restore?: { dm: DeviceMemory; deviceState: Uint8Array };
  /** Bind the VM's address at the start (default); false leaves it for DurableDevice.bindAddress(). */
  bindAddress?: boolean;
  /**
   * Wrap the VM's link on this thread (a host agent's per-QP counters, a loss switch): with
   * `socket: 'main'` only, where the packets pass through this thread.
   */
  wrapLink?: (link: Link) => Link;
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
    const socket = o.socket ?? 'main';
    if (o.wrapLink !== undefined && socket !== 'main') throw new BackendError(BackendErrorCode.BadCall, "a link is wrapped on this thread only when it holds the socket (socket: 'main')");
    const ramBytes = o.ramBytes ?? DEFAULT_RAM_BYTES;
    const dm = o.restore?.dm ?? newGuestMemory(ramBytes, o.regionBytes ?? ramBytes);
    const control = ControlBlock.create(o.slotBytes ?? DEFAULT_SLOT_BYTES);
    if (o.restore !== undefined) {
      if (o.journal === false) throw new BackendError(BackendErrorCode.BadJournal, 'a migrated device comes back through its journal: it cannot run without one');
      new Journal(control).commit(...journalEntryChunks({ deviceState: o.restore.deviceState, unpublished: [], intent: null }));
    }
    const top = dm.guest.regions.list().reduce((end, r) => Math.max(end, r.gpa + r.size), 0);
    const logs = DeviceLogs.create(Math.max(top, LOGGED_GPA_BYTES));
    const bind = o.bindAddress ?? true;
    this.opening++;
    let device: DurableDevice;
    try {
      const side = socket === 'main' ? await SocketSide.open({ ip: o.ip, port: o.port, batched: o.batched, ringBytes: RING_BYTES, bind, wrapLink: o.wrapLink }) : null;
      const spec: BackendSpec = {
        ip: o.ip, port: o.port, memory: dm.memory, layout: dm.layout, control: control.buffer, provider: o.provider, batched: o.batched, journal: o.journal, rings: side?.rings,
        dirtyLog: logs.deviceSpec, unbound: !bind,
      };
      device = new DurableDevice(this, dm, control, spec, logs, side);
      try {
        await device.start(o.restore === undefined ? 'fresh' : 'restore');
      } catch (err) {
        await side?.close();
        throw err;
      }
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

/** Guest memory for a new device: a RAM window of `ramBytes`, `regionBytes` of it plugged at GPA 0. */
function newGuestMemory(ramBytes: number, regionBytes: number): DeviceMemory {
  const dm = DeviceMemory.create({ ramBytes, arenaBytes: ARENA_BYTES });
  dm.addRegion(0, regionBytes);
  return dm;
}
