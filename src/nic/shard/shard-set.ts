// The threads of one device's QP shards (sharded-verbs.ts): shard 0, the SoftRoce on the device's
// own thread, and a worker per other shard (remote-shard.ts). It starts them, each joining the VM
// address's steering group in index order, reads their completion rings, and replaces a worker
// that dies: the successor adopts the dead one's socket, which stayed open in the group at the
// same index (so steering is unchanged), and starts from the objects every shard holds
// (SoftRoce.saveObjects, taken from shard 0 when the successor is ready). What the dead thread's
// QPs were doing is gone; the facade fails their work cleanly (qp-ledger.ts).
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { DirtyLog } from '../../migration/dirty-log.js';
import type { PacketRing } from '../../backend/packet-ring.js';
import { nativeStatus } from '../../native/addon.js';
import { VerbsError, VerbsErrorCode } from '../errors.js';
import type { Link } from '../link.js';
import type { SoftRoce } from '../soft/soft-roce.js';
import type { RecvWr, SendWr } from '../verbs.js';
import { RemoteShard } from './remote-shard.js';
import { type ShardContext, callShard } from './shard-methods.js';
import { QpOwners } from './qp-owners.js';
import type { ShardProviderOptions, ShardWorkerData } from './shard-worker.js';

/** Replacements of one shard that may fail in a row before it is given up. */
const MAX_FAILED_STARTS = 3;
/** A successor that dies sooner than this after starting counts as one that failed to start. */
const QUICK_DEATH_MS = 1000;

/** What the facade does with a shard's completion ring, and when a shard's thread died. */
export interface ShardSink {
  drain(ring: PacketRing): void;
  lost(index: number): void;
}

interface Slot {
  remote: RemoteShard | null;
  spec: Omit<ShardWorkerData, 'block' | 'completions' | 'posts'>;
  window: number;
  /** The socket, while no live thread owns it (the dead one's, for its successor). */
  orphanFd: number | null;
  replacing: Promise<void> | null;
  /** Successors that could not start, or died within QUICK_DEATH_MS of starting, in a row. */
  failedStarts: number;
  startedAt: number;
}

export interface ShardSetOptions {
  shards: number;
  provider: ShardProviderOptions;
  dirtyLog?: DirtyLog;
  callTimeoutMs?: number;
}

export class ShardSet {
  private sink: ShardSink | null = null;
  private closed = false;
  /** Workers that died, and successors started for them. */
  lostCount = 0;
  replacedCount = 0;
  /** Why the last shard was lost, if one was. */
  lastLoss: string | null = null;

  private readonly localCtx: ShardContext;

  private constructor(
    readonly local: SoftRoce,
    private readonly slots: Slot[],
    private readonly dm: DeviceMemory,
    private readonly callTimeoutMs: number | undefined,
    /** Which shard runs each QP (qp-owners.ts), shared with every shard. */
    readonly owners: QpOwners,
  ) {
    this.localCtx = {
      roce: local, index: 0, owners,
      // Shard 0's completions are the facade's to pull, on this thread.
      flushCompletions: () => 0,
      steer: () => {
        throw new VerbsError(VerbsErrorCode.NotSupported, 'shard 0 does not hold its socket itself; a worker shard replaces the steering program');
      },
    };
  }

  /** Shard 0 over `local`, whose link is the group's first member, and a worker for each other. */
  static async open(dm: DeviceMemory, link: Link, local: SoftRoce, o: ShardSetOptions): Promise<ShardSet> {
    const n = o.shards;
    // Each worker shard allocates its tables in a window of the arena of its own.
    const windowBytes = Math.floor(dm.layout.arenaBytes / (n + 1) / 65536) * 65536;
    const slots: Slot[] = [];
    const owners = new QpOwners();
    try {
      for (let i = 1; i < n; i++) {
        const window = dm.arena.alloc(windowBytes, 4096);
        const spec = {
          index: i, group: n, ip: link.localIp, port: link.localPort, memory: dm.memory, layout: dm.layout,
          arena: { off: window, bytes: windowBytes }, dirtyLog: o.dirtyLog?.placement ?? null, provider: o.provider, owners: owners.buffer,
        };
        const slot: Slot = { remote: null, spec, window, orphanFd: null, replacing: null, failedStarts: 0, startedAt: performance.now() };
        slots.push(slot);
        slot.remote = await RemoteShard.start(spec, o.callTimeoutMs);
      }
    } catch (err) {
      await Promise.all(slots.map((s) => s.remote?.stop()));
      for (const s of slots) dm.arena.release(s.window);
      throw err;
    }
    return new ShardSet(local, slots, dm, o.callTimeoutMs, owners);
  }

  /** Start reading completions into `sink`, which also hears of lost shards. */
  attach(sink: ShardSink): void {
    this.sink = sink;
    this.slots.forEach((s, i) => this.watch(i + 1, s.remote!));
  }

  get count(): number {
    return this.slots.length + 1;
  }

  /** Whether shard `index` runs now (shard 0 always does). */
  live(index: number): boolean {
    return index === 0 || this.slots[index - 1]?.remote?.alive === true;
  }

  call(index: number, method: string, args: unknown[]): unknown {
    if (index === 0) return callShard(this.localCtx, method, args);
    return this.remote(index).call(method, args);
  }

  post(index: number, qpn: number, kind: 0 | 1, wrs: readonly (SendWr | RecvWr)[]): void {
    this.remote(index).post(qpn, kind, wrs);
  }

  /** Worker shard `index`'s completion ring into the sink now (a QP leaving it takes its completions along first). */
  drainNow(index: number): void {
    const r = this.slots[index - 1]?.remote;
    if (r !== null && r !== undefined) this.sink?.drain(r.completions);
  }

  /** Replace the group's steering program, through a running worker shard (any member sets the group's). */
  steer(overrides: number[]): void {
    for (let i = 1; i < this.count; i++) {
      if (this.live(i)) return void this.call(i, 'steer', [overrides]);
    }
    throw new VerbsError(VerbsErrorCode.IoError, 'no worker shard runs to change the steering program through');
  }

  /** End worker shard `index` at once, as a crash would; resolves once its successor runs (or could not). */
  async kill(index: number): Promise<void> {
    const slot = this.slots[index - 1];
    if (slot === undefined || slot.remote === null) throw new RangeError(`no running worker shard ${index}`);
    const r = slot.remote;
    await r.terminate();
    await r.exited;
    while (slot.replacing !== null) await slot.replacing;
  }

  /** Stop every worker (shard 0 is the caller's), and close a socket no thread owns. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map(async (s) => {
      while (s.replacing !== null) await s.replacing;
      await s.remote?.stop();
      if (s.orphanFd !== null) closeOrphan(s.orphanFd);
      s.orphanFd = null;
    }));
    for (const s of this.slots) this.dm.arena.release(s.window);
  }

  private remote(index: number): RemoteShard {
    const r = this.slots[index - 1]?.remote;
    if (r === null || r === undefined || !r.alive) {
      throw new VerbsError(VerbsErrorCode.IoError, `QP shard ${index} is not running${this.lastLoss === null ? '' : ` (${this.lastLoss})`}`);
    }
    return r;
  }

  private watch(index: number, r: RemoteShard): void {
    r.onLost = (why) => this.lose(index, r, why);
    void this.readCompletions(r);
  }

  private async readCompletions(r: RemoteShard): Promise<void> {
    const ring = r.completions;
    while (!this.closed && r.alive) {
      const seen = ring.bell;
      this.sink?.drain(ring);
      await ring.wait(seen, 250);
    }
  }

  private lose(index: number, r: RemoteShard, why: string): void {
    const slot = this.slots[index - 1];
    if (slot.remote !== r) return;
    this.lostCount++;
    this.lastLoss = why;
    if (performance.now() - slot.startedAt < QUICK_DEATH_MS) slot.failedStarts++;
    else slot.failedStarts = 0;
    // What the dead thread finished and reported still counts.
    this.sink?.drain(r.completions);
    slot.remote = null;
    slot.orphanFd = r.fd;
    this.sink?.lost(index);
    if (!this.closed) this.replace(index, slot);
  }

  private replace(index: number, slot: Slot): void {
    if (slot.failedStarts >= MAX_FAILED_STARTS) {
      this.lastLoss = `QP shard ${index} failed to start ${MAX_FAILED_STARTS} times in a row and is given up`;
      return;
    }
    const fd = slot.orphanFd!;
    slot.replacing = (async () => {
      let r: RemoteShard;
      try {
        r = await RemoteShard.start({ ...slot.spec, adoptFd: fd }, this.callTimeoutMs, () => this.local.saveObjects());
      } catch (err) {
        slot.failedStarts++;
        this.lastLoss = `QP shard ${index} could not be replaced: ${(err as Error).message}`;
        slot.replacing = null;
        if (!this.closed) this.replace(index, slot);
        return;
      }
      slot.orphanFd = null;
      slot.startedAt = performance.now();
      slot.remote = r;
      slot.replacing = null;
      // Closed meanwhile: close() stops it with the rest.
      if (this.closed) return;
      this.replacedCount++;
      this.watch(index, r);
    })();
  }
}

function closeOrphan(fd: number): void {
  const status = nativeStatus();
  if (status.available) status.addon.closeFd(fd);
}
