// A host process's VMs spread over a pool of worker threads (piscina). Each VM is one long-running
// task (vm-task.ts) that holds the VM's whole data path — guest memory, device, RoCE engine, UDP
// socket — in the worker it was placed on; the pool's least-busy balancer places every new VM (and
// every migration listener, which becomes a VM) on the worker holding the fewest. The main thread
// keeps the control path: it serves the host agent's operations (the same table as an agent
// running its VMs inline, agent.ts), routes each to the VM's task over a MessagePort, merges the
// metrics, and supervises:
//
//   - Bounded: a worker holds at most `vmsPerWorker` tasks and nothing queues; a host that is full
//     refuses a new VM (or listener) at once.
//   - A worker that dies (a crash, an uncaught error, terminate) takes its VMs with it — their
//     device state lived there — and piscina starts a replacement, so the pool keeps its size.
//     Every call to a lost VM fails with the reason; the rest of the host serves on.
//   - Shutdown ends every task (each closes its VM, releasing its address), then the pool.
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type client from 'prom-client';
import type { MigrationReport } from '../../migration/index.js';
import type { LogLevel, Logger } from '../../observe/log.js';
import { type VmMetricsSnapshot, createHostRegistry, departedSnapshot } from '../../observe/metrics.js';
import type { AcceptedVm, ListenArgs, MigrateArgs, OpenVmArgs } from '../agent.js';
import { type OpTable, RemoteError, sendEvent } from '../ipc.js';
import { PortClient } from './port-channel.js';
import { PoolSockets } from './pool-sockets.js';
import { HangWatchdog, type WatchedThread } from './watchdog.js';
import { TASK_FAULT_PREFIX } from './task-scope.js';
import type { VmTaskInput, VmTaskReady, VmTaskResult } from './vm-task.js';

/** The task's CommonJS entry (vm-task-entry.cts: why not vm-task.js itself). */
const VM_TASK = new URL('./vm-task-entry.cjs', import.meta.url).href;

/** Where a VM moving between this host's workers is listened for. */
const LOCAL_MIGRATION_HOST = '127.0.0.1';

/** VMs one worker holds at most, unless told otherwise. */
export const DEFAULT_VMS_PER_WORKER = 16;

export interface HostPoolOptions {
  host: string;
  /** Worker threads; default the machine's available parallelism. */
  workers?: number;
  vmsPerWorker?: number;
  logLevel: LogLevel;
  log: Logger;
  /** Where the VMs' migration progress goes (default the process's IPC channel to its parent). */
  emit?: (event: Record<string, unknown>) => void;
  /** A worker holding VMs that answers no ping for this long is terminated (watchdog.ts); 0: never. Default 30 s. */
  hangMs?: number;
  /**
   * Who holds each VM's UDP socket: the VM's worker ('worker', the default), or this thread
   * ('main': packets cross to the VM's worker through rings in shared memory, pool-sockets.ts).
   * 'main' keeps sockets out of the workers, so a worker that dies under traffic cannot abort
   * Node 20 (docs/worker-pool.md, "Who holds the sockets"); on two cores it costs most of the
   * two-worker throughput, as this thread becomes a third busy one.
   */
  socket?: 'main' | 'worker';
}

/** How long a worker may leave a ping unanswered before the watchdog ends it, unless told otherwise. */
export const DEFAULT_HANG_MS = 30_000;

/** One VM task: its port, the worker thread it runs in, and what it holds. */
interface VmTask {
  id: number;
  client: PortClient;
  threadId: number;
  /** Settles when the task returns, or rejects when its worker died. */
  done: Promise<VmTaskResult>;
  /** The VM it holds (null while it only listens). */
  vm: string | null;
  ip: string | null;
  /** The port this thread serves the task's socket calls on (socket 'main'). */
  sockets: MessagePort | null;
}

/** What rebalance() did: the VMs it moved, and those it could not. */
export interface Rebalanced {
  moves: { vm: string; from: number; to: number }[];
  refused: { vm: string; why: string }[];
}

/** Where the host's VMs run, for operators and tests. */
export interface PoolPlacement {
  workers: number;
  threadIds: number[];
  vms: Record<string, number>;
  lost: Record<string, string>;
  /** Who holds the VMs' sockets (HostPoolOptions.socket). */
  socket: 'main' | 'worker';
  /** The VM addresses whose sockets the main thread holds now (socket 'main'), sorted. */
  mainSockets: string[];
  /** Datagrams the rings of those sockets dropped as full, arriving (rx) and leaving (tx). */
  mainSocketDrops: { rx: number; tx: number };
}

export class HostPool {
  readonly workers: number;
  readonly vmsPerWorker: number;
  readonly socket: 'main' | 'worker';
  readonly registry: client.Registry;
  /** The VMs' sockets, when this thread holds them. */
  private readonly sockets: PoolSockets | null;
  private readonly pool: Piscina;
  private readonly log: Logger;
  private readonly emit: (event: Record<string, unknown>) => void;
  private readonly tasks = new Set<VmTask>();
  private readonly byVm = new Map<string, VmTask>();
  private readonly byListenPort = new Map<number, VmTask>();
  /** VMs whose worker died, and why. */
  private readonly lost = new Map<string, string>();
  /** VMs that migrated away, kept for the metrics' phase. */
  private readonly departed = new Map<string, { ip: string; dirtyPages: number }>();
  private snapshots: VmMetricsSnapshot[] = [];
  private nextTask = 1;
  /** Tasks asked of piscina that do not serve yet. */
  private starting = 0;
  private closing: Promise<void> | null = null;
  /** Set by drain(): no new VM or listener is placed; resolved when the last VM has gone. */
  private draining: { done: Promise<void>; resolve: () => void } | null = null;
  private readonly watchdog: HangWatchdog | null;
  /** Threads the watchdog terminated, and how long they had been silent. */
  private readonly hung = new Map<number, number>();

  constructor(private readonly options: HostPoolOptions) {
    this.workers = options.workers ?? availableParallelism();
    this.vmsPerWorker = options.vmsPerWorker ?? DEFAULT_VMS_PER_WORKER;
    for (const [name, v] of [['workers', this.workers], ['vmsPerWorker', this.vmsPerWorker]] as const) {
      if (!Number.isSafeInteger(v) || v < 1 || v > 256) throw new RangeError(`${name} must be an integer in [1, 256], got ${v}`);
    }
    this.socket = options.socket ?? 'worker';
    if (this.socket !== 'main' && this.socket !== 'worker') throw new RangeError(`socket must be 'main' or 'worker', got ${String(this.socket)}`);
    this.sockets = this.socket === 'main' ? new PoolSockets() : null;
    this.log = options.log;
    this.emit = options.emit ?? sendEvent;
    this.pool = new Piscina({
      filename: VM_TASK,
      minThreads: this.workers,
      maxThreads: this.workers,
      concurrentTasksPerWorker: this.vmsPerWorker,
      // A VM task runs for the VM's life. The pool refuses a task when every slot is taken
      // (startTask), so piscina queues one only while a dead worker's replacement starts. (Its
      // own refusal, maxQueue 0, leaves the refused task in its queue, to run later.) A worker's
      // event loop must never block between tasks.
      atomics: 'disabled',
      idleTimeout: Infinity,
    });
    this.pool.on('error', (err: Error) => this.log.error({ err }, 'a pool worker failed outside any VM task'));
    this.registry = createHostRegistry(options.host, () => this.snapshots);
    const hangMs = options.hangMs ?? DEFAULT_HANG_MS;
    this.watchdog = hangMs > 0 ? new HangWatchdog(hangMs, () => this.watched(), (id, ms) => this.terminateHung(id, ms)) : null;
  }

  /** One ping per worker thread that holds tasks: a task there answers it from that thread's loop. */
  private watched(): WatchedThread[] {
    const one = new Map<number, VmTask>();
    for (const t of this.tasks) if (!one.has(t.threadId)) one.set(t.threadId, t);
    return [...one.values()].map((t) => ({ threadId: t.threadId, ping: () => t.client.call('threadStats') }));
  }

  private terminateHung(threadId: number, silentMs: number): void {
    const worker = this.threads().find((w) => w.threadId === threadId);
    if (worker === undefined) return;
    this.hung.set(threadId, silentMs);
    this.log.error({ thread: threadId, silentMs: Math.round(silentMs) }, 'a worker stopped answering; terminating it');
    void worker.terminate();
  }

  get host(): string {
    return this.options.host;
  }

  /** Start a VM task on the least busy worker; resolves once it serves. */
  private async startTask(): Promise<VmTask> {
    if (this.closing !== null) throw new Error(`host ${this.host} is shutting down`);
    if (this.draining !== null) throw new Error(`host ${this.host} is draining: it takes no new VM`);
    if (this.tasks.size + this.starting >= this.workers * this.vmsPerWorker) {
      throw new Error(`host ${this.host} is full: ${this.workers} workers hold ${this.vmsPerWorker} VMs each`);
    }
    this.starting++;
    try {
      return await this.runTask();
    } finally {
      this.starting--;
    }
  }

  private async runTask(): Promise<VmTask> {
    const id = this.nextTask++;
    const { port1, port2 } = new MessageChannel();
    const client = new PortClient(port1, `host ${this.host} VM task ${id}`);
    const ready = new Promise<VmTaskReady>((resolve) => port1.once('message', resolve));
    const sockets = this.sockets === null ? null : new MessageChannel();
    if (sockets !== null) this.sockets?.serve(id, sockets.port1);
    const input: VmTaskInput = { host: this.host, task: id, logLevel: this.options.logLevel, port: port2, sockets: sockets?.port2 };
    let done: Promise<VmTaskResult>;
    try {
      done = this.pool.run(input, { transferList: sockets === null ? [port2] : [port2, sockets.port2] }) as Promise<VmTaskResult>;
    } catch (err) {
      port1.close();
      sockets?.port1.close();
      await this.sockets?.dropTask(id);
      throw err;
    }
    const started = await Promise.race([ready, done.then(() => null, (err: unknown) => err)]);
    if (started === null || started instanceof Error || (started as VmTaskReady).ready !== true) {
      client.fail(new Error('the VM task ended before it served'));
      sockets?.port1.close();
      await this.sockets?.dropTask(id);
      throw this.refusal(started);
    }
    const task: VmTask = { id, client, threadId: (started as VmTaskReady).threadId, done, vm: null, ip: null, sockets: sockets?.port1 ?? null };
    this.tasks.add(task);
    task.client.onEvent((e) => this.emit(e));
    done.then(
      () => this.forget(task),
      (err: unknown) => this.taskLost(task, err instanceof Error ? err : new Error(String(err))),
    );
    return task;
  }

  /** Why a task could not start. */
  private refusal(err: unknown): Error {
    if (err === null || err === undefined) return new Error(`host ${this.host}: a VM task ended before it served`);
    return err instanceof Error ? err : new Error(String(err));
  }

  private forget(task: VmTask): void {
    this.tasks.delete(task);
    // A task that ended released its address itself; a lost one leaves it to this thread.
    task.sockets?.close();
    void this.sockets?.dropTask(task.id).catch((err: unknown) => this.log.error({ err, task: task.id }, "closing a lost VM task's sockets failed"));
    if (task.vm !== null && this.byVm.get(task.vm) === task) this.byVm.delete(task.vm);
    for (const [port, t] of this.byListenPort) if (t === task) this.byListenPort.delete(port);
    if (this.tasks.size === 0) this.draining?.resolve();
  }

  /**
   * Take no new VM or migration listener from now on; resolves once every VM the host holds has
   * gone (closed, migrated away or lost). The VMs run on meanwhile: an operator moves them out.
   */
  drain(): Promise<void> {
    if (this.draining === null) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.draining = { done, resolve };
      if (this.tasks.size === 0) resolve();
    }
    return this.draining.done;
  }

  /** A task ended in failure: its own fault (the worker lives on), or its worker died. */
  private taskLost(task: VmTask, err: Error): void {
    const silent = this.hung.get(task.threadId);
    const reason = err.message.startsWith(TASK_FAULT_PREFIX)
      ? `it failed in worker thread ${task.threadId} (the thread serves on): ${err.message.slice(TASK_FAULT_PREFIX.length)}`
      : silent === undefined
        ? `its worker thread ${task.threadId} died: ${err.message}`
        : `its worker thread ${task.threadId} answered nothing for ${Math.round(silent)} ms and was terminated`;
    task.client.fail(new Error(`${task.vm === null ? `VM task ${task.id}` : `VM ${task.vm}`} was lost: ${reason}`));
    if (task.vm !== null && this.byVm.get(task.vm) === task) this.lost.set(task.vm, reason);
    this.forget(task);
    this.log.error({ vm: task.vm, thread: task.threadId, reason }, 'a VM was lost');
  }

  /** End a task: its agent closes what it holds and the task returns (its slot is free again). */
  private async endTask(task: VmTask): Promise<void> {
    await task.client.call('endTask').catch(() => {});
    await task.done.catch(() => {});
    this.forget(task);
  }

  private taskOf(vm: string): VmTask {
    const t = this.byVm.get(vm);
    if (t !== undefined) return t;
    if (this.lost.has(vm)) throw this.lostError(vm);
    throw new Error(`no VM named ${vm} on host ${this.host}`);
  }

  private lostError(vm: string): Error {
    return new Error(`VM ${vm} on host ${this.host} was lost: ${this.lost.get(vm)}`);
  }

  /** Pass `op` to the VM's task as it is. */
  async call<T = unknown>(vm: string, op: string, args: Record<string, unknown>): Promise<T> {
    const task = this.taskOf(vm);
    try {
      return await task.client.call<T>(op, args);
    } catch (err) {
      // The port closed under the call: if the worker died, say so rather than "port closed".
      if (err instanceof RemoteError) throw err;
      await task.done.catch(() => {});
      throw this.lost.has(vm) ? this.lostError(vm) : err;
    }
  }

  /** The task holds VM `name` now (opened or taken in). */
  private hold(task: VmTask, name: string, ip: string): void {
    task.vm = name;
    task.ip = ip;
    this.byVm.set(name, task);
    this.lost.delete(name);
    this.departed.delete(name);
  }

  async openVm(a: OpenVmArgs): Promise<{ name: string; ip: string }> {
    if (this.byVm.has(a.name)) throw new Error(`host ${this.host} already holds a VM named ${a.name}`);
    const task = await this.startTask();
    try {
      const opened = await task.client.call<{ name: string; ip: string }>('openVm', { ...a });
      if (this.byVm.has(a.name)) throw new Error(`host ${this.host} already holds a VM named ${a.name}`);
      this.hold(task, a.name, a.ip);
      return opened;
    } catch (err) {
      await this.endTask(task);
      throw err;
    }
  }

  async listen(a: ListenArgs, arriving?: string): Promise<number> {
    const task = await this.startTask();
    try {
      // A VM moving between this host's workers (moveVm) is held here until it arrives.
      const heldElsewhere = [...this.byVm.keys()].filter((vm) => vm !== arriving);
      const port = await task.client.call<number>('listen', { ...a, heldElsewhere });
      this.byListenPort.set(port, task);
      return port;
    } catch (err) {
      await this.endTask(task);
      throw err;
    }
  }

  /**
   * The VM the listener on `port` took in. (A VM of the same name opened here after the listener
   * was set up is not known to its task, which checked only the names held then.)
   */
  async accepted(port: number): Promise<AcceptedVm> {
    const task = this.byListenPort.get(port);
    if (task === undefined) throw new Error(`host ${this.host} has no migration listener on port ${port}`);
    this.byListenPort.delete(port);
    try {
      const vm = await task.client.call<AcceptedVm>('accepted', { port });
      this.hold(task, vm.name, vm.ip);
      return vm;
    } catch (err) {
      await this.endTask(task);
      throw err;
    }
  }

  async migrate(a: MigrateArgs): Promise<MigrationReport> {
    const task = this.taskOf(a.vm);
    const report = await task.client.call<MigrationReport>('migrate', { ...a });
    // The VM runs elsewhere now: its task holds nothing.
    const [snap] = await task.client.call<VmMetricsSnapshot[]>('snapshot').catch(() => []);
    this.departed.set(a.vm, { ip: task.ip ?? '', dirtyPages: snap?.dirtyPages ?? 0 });
    await this.endTask(task);
    return report;
  }

  /**
   * Move a running VM to the least busy worker by live migration inside this host (the same
   * coordinator as between hosts, over loopback TCP; its address moves from one worker's socket
   * to the other's). Resolves with the report, or null when the least busy worker is the VM's own
   * (nothing to gain). On failure the VM runs on where it was.
   */
  async moveVm(vm: string, options: Partial<Omit<MigrateArgs, 'vm' | 'host' | 'port'>> = {}): Promise<{ report: MigrationReport; from: number; to: number } | null> {
    const task = this.taskOf(vm);
    const port = await this.listen({ host: LOCAL_MIGRATION_HOST, port: 0 }, vm);
    const arrival = this.byListenPort.get(port) as VmTask;
    if (arrival.threadId === task.threadId) {
      this.byListenPort.delete(port);
      await this.endTask(arrival);
      return null;
    }
    let report: MigrationReport;
    try {
      report = await task.client.call<MigrationReport>('migrate', { ...options, vm, host: LOCAL_MIGRATION_HOST, port });
    } catch (err) {
      this.byListenPort.delete(port);
      await this.endTask(arrival);
      throw err;
    }
    await this.accepted(port);
    await this.endTask(task);
    return { report, from: task.threadId, to: arrival.threadId };
  }

  /**
   * Even the VMs out over the workers: while the busiest worker holds two or more VMs more than
   * the least busy, move one of its VMs (moveVm). After a worker was replaced, the replacement
   * starts empty; this fills it. A VM that cannot move (the agent moves only VMs running its
   * workload, whose state its migration carries) is passed over and reported with the reason.
   */
  async rebalance(): Promise<Rebalanced> {
    const done: Rebalanced = { moves: [], refused: [] };
    const passed = new Set<string>();
    for (let guard = 0; guard < 2 * this.byVm.size; guard++) {
      const load = new Map<number, string[]>(this.threads().map((w) => [w.threadId, []]));
      for (const [vm, t] of this.byVm) load.get(t.threadId)?.push(vm);
      const byLoad = [...load.values()].sort((x, y) => y.length - x.length);
      if (byLoad.length < 2 || byLoad[0].length - byLoad[byLoad.length - 1].length < 2) break;
      const vm = byLoad[0].find((v) => !passed.has(v));
      if (vm === undefined) break;
      try {
        const moved = await this.moveVm(vm);
        if (moved === null) break;
        done.moves.push({ vm, from: moved.from, to: moved.to });
      } catch (err) {
        passed.add(vm);
        done.refused.push({ vm, why: err instanceof Error ? err.message : String(err) });
      }
    }
    return done;
  }

  async closeVm(vm: string): Promise<void> {
    const task = this.taskOf(vm);
    await task.client.call('closeVm', { vm });
    await this.endTask(task);
  }

  /** The host's metrics: every task's VMs, those that left, and those lost. */
  async metrics(): Promise<client.MetricObjectWithValues<client.MetricValue<string>>[]> {
    const held = await Promise.all([...this.byVm.values()].map((t) => t.client.call<VmMetricsSnapshot[]>('snapshot').catch(() => [])));
    const gone = [...this.departed].map(([vm, d]) => departedSnapshot(vm, d));
    this.snapshots = gone.concat(held.flat());
    return this.registry.getMetricsAsJSON();
  }

  placement(): PoolPlacement {
    return {
      workers: this.workers,
      threadIds: this.threads().map((w) => w.threadId),
      vms: Object.fromEntries([...this.byVm].map(([vm, t]) => [vm, t.threadId])),
      lost: Object.fromEntries(this.lost),
      socket: this.socket,
      mainSockets: this.sockets?.addresses() ?? [],
      mainSocketDrops: this.sockets?.dropped ?? { rx: 0, tx: 0 },
    };
  }

  private threads(): Worker[] {
    return this.pool.threads as Worker[];
  }

  /**
   * Stop the worker thread a VM runs in, as a crash would (an operator's way out of a wedged
   * worker; the tests' way to kill one). Every VM on that thread is lost; the pool replaces the
   * thread. Resolves once the thread has exited.
   */
  async terminateWorkerOf(vm: string): Promise<number> {
    const task = this.taskOf(vm);
    const worker = this.threads().find((w) => w.threadId === task.threadId);
    if (worker === undefined) throw new Error(`VM ${vm}'s worker thread ${task.threadId} is not in the pool`);
    await worker.terminate();
    await task.done.catch(() => {});
    return task.threadId;
  }

  vmNames(): string[] {
    return [...this.byVm.keys()];
  }

  /** End every task (each closes its VM and releases its address), then the workers. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.watchdog?.stop();
      await Promise.all([...this.tasks].map((t) => this.endTask(t)));
      await this.pool.destroy();
      await this.sockets?.close();
    })();
    return this.closing;
  }
}

type A = Record<string, unknown>;

/** The host agent's operations (agentOps' table, see AgentClient) served by a pool. */
export function poolOps(pool: HostPool, shutdown: () => Promise<void>): OpTable {
  const routed = (op: string) => (a: A) => pool.call(a.vm as string, op, a);
  return {
    ping: () => ({ host: pool.host, pid: process.pid, vms: pool.vmNames(), workers: pool.workers }),
    openVm: (a: A) => pool.openVm(a as unknown as OpenVmArgs),
    setupWorkload: routed('setupWorkload'),
    connect: routed('connect'),
    start: routed('start'),
    drain: routed('drain'),
    settle: routed('settle'),
    pause: routed('pause'),
    resume: routed('resume'),
    setLoss: routed('setLoss'),
    setupStream: routed('setupStream'),
    connectStream: routed('connectStream'),
    runStream: routed('runStream'),
    listen: (a: A) => pool.listen(a as unknown as ListenArgs),
    accepted: (a: A) => pool.accepted(a.port as number),
    migrate: (a: A) => pool.migrate(a as unknown as MigrateArgs),
    verify: routed('verify'),
    status: routed('status'),
    metrics: () => pool.metrics(),
    closeVm: (a: A) => pool.closeVm(a.vm as string),
    placement: () => pool.placement(),
    drainHost: () => pool.drain(),
    moveVm: (a: A) => pool.moveVm(a.vm as string),
    rebalance: () => pool.rebalance(),
    threadStats: routed('threadStats'),
    terminateWorkerOf: (a: A) => pool.terminateWorkerOf(a.vm as string),
    shutdown: async () => {
      await shutdown();
    },
  };
}
