// QP shards: one device's QPs spread over several threads (docs/worker-pool.md, "QP shards").
// The device keeps its virtqueues, control queue and CQ writing on its own thread and calls this
// facade as its verbs provider. Behind it are N SoftRoce shards over the device's one shared
// memory: shard 0 on the device's thread, shards 1..N-1 in worker threads. Each shard holds the
// QPs whose number modulo N is its index, and its own socket in the VM address's SO_REUSEPORT
// group, where a BPF program steers every arriving packet by destination QPN to that same shard
// (BatchedUdpLink's qpnSteering): a QP's requester, responder, completer and timers all run in
// one thread, its owner, with no lock on the data path.
//
// - PDs, MRs, CQs, SRQs, AHs and GIDs are made on every shard, in the same order, so every shard
//   numbers them alike (checked: a shard that answers differently undoes the call).
// - A QP is made on its own shard; a QP on an SRQ lives on shard 0 with the SRQ's receives.
// - A shard's completions come back in per-shard rings in shared memory, a CQ's batch per record,
//   and are queued in this facade's CQs in the order each shard made them, so each QP's
//   completions stay in order; a CQ gathers from every shard.
// - Posts reach a worker shard through its post ring without waiting (the device posts one work
//   request at a time); a post the shard refuses comes back as a LOC_QP_OP_ERR completion rather
//   than as an exception. Control calls are synchronous (call-channel.ts), and a shard runs every
//   post queued before a call first, so a call never overtakes a post.
// - Not yet: saving the state (R9) across shards, and surviving a shard's death; both are
//   refused or reported, never half done (docs/worker-pool.md).
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { DirtyLog } from '../../migration/dirty-log.js';
import { type PacketRing } from '../../backend/packet-ring.js';
import { registerCodedError } from '../../backend/call-channel.js';
import { MAX_QPN_STEERING } from '../../net/batched-udp-link.js';
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import type { Link } from '../link.js';
import { SoftCq } from '../soft/cq.js';
import { MAX_QPN, MIN_QPN } from '../soft/options.js';
import { SoftRoce } from '../soft/soft-roce.js';
import type { SoftRoceCounters } from '../soft/state/parts.js';
import type {
  AddressVector, CreateQpOptions, DeviceLimits, MrKeys, PhysicalRegistration, ProviderCapabilities, QpAttributes, RecvWr, SendWr, Verbs,
  WorkCompletion,
} from '../verbs.js';
import { RemoteShard } from './remote-shard.js';
import { type ShardCounters, callShard, shardCounters } from './shard-methods.js';
import type { ShardProviderOptions } from './shard-worker.js';
import { POST_RECV, POST_SEND } from './post-codec.js';
import { RECORD_OVERRUN, RECORD_REFUSED, REFUSED_BYTES, WC_RECORD_BYTES, decodeWc } from './wc-codec.js';
import { WcStatus } from '../types.js';

registerCodedError('VerbsError', VerbsErrorCode, (code, message) => new VerbsError(code, message));

/** Most shards a device may have: the steering group's limit. */
export const MAX_SHARDS = MAX_QPN_STEERING;

export interface ShardedVerbsOptions {
  /** Shards, 2..MAX_SHARDS (1 shard is a plain SoftRoce). */
  shards: number;
  provider?: ShardProviderOptions;
  /** The device's dirty log, which worker shards mark too (R4). */
  dirtyLog?: DirtyLog;
  /** Milliseconds a call into a worker shard may wait to be taken. */
  callTimeoutMs?: number;
}

interface QpPlace {
  shard: number;
  pd: number;
  sendCq: number;
  recvCq: number;
  srq: number | undefined;
}

interface Shard {
  call(method: string, args: unknown[]): unknown;
}

export class ShardedVerbs implements Verbs {
  readonly name = 'soft-roce-sharded';
  readonly capabilities: ProviderCapabilities;
  readonly limits: DeviceLimits;
  private readonly shards: Shard[];
  private readonly cqs = new Map<number, SoftCq>();
  private readonly qps = new Map<number, QpPlace>();
  private readonly completionHandlers: ((cq: number) => void)[] = [];
  private qpnCursor = MIN_QPN;
  private closed = false;
  /** Why a shard was lost, if one was: the device's QPs there no longer run. */
  lost: string | null = null;
  /** Resolves when every worker shard has stopped (after close). */
  stopped: Promise<void> = Promise.resolve();

  private constructor(readonly local: SoftRoce, private readonly remotes: RemoteShard[]) {
    this.shards = [{ call: (m, a) => callShard(local, m, a) }, ...remotes];
    this.capabilities = Object.freeze({ ...local.capabilities, saveState: false });
    this.limits = local.limits;
    local.onCompletion((cq) => this.pullLocal(cq));
    for (const r of remotes) {
      r.onLost = (why) => {
        this.lost ??= why;
      };
      void this.readCompletions(r);
    }
  }

  /**
   * Shard 0 over `link` (bound to the VM's address as the first member of a steering group of
   * `options.shards`), and a worker for each other shard, each joining the group in turn.
   */
  static async open(dm: DeviceMemory, link: Link, options: ShardedVerbsOptions): Promise<ShardedVerbs> {
    const n = options.shards;
    if (!Number.isInteger(n) || n < 2 || n > MAX_SHARDS) throw new RangeError(`QP shards must be an integer in [2, ${MAX_SHARDS}], got ${n}`);
    const provider = options.provider ?? {};
    const local = new SoftRoce(dm, link, provider);
    // Each worker shard allocates its tables in a window of the arena of its own.
    const windowBytes = Math.floor(dm.layout.arenaBytes / (n + 1) / 65536) * 65536;
    const windows: number[] = [];
    const remotes: RemoteShard[] = [];
    try {
      for (let i = 1; i < n; i++) {
        const off = dm.arena.alloc(windowBytes, 4096);
        windows.push(off);
        remotes.push(await RemoteShard.start({
          index: i, group: n, ip: link.localIp, port: link.localPort, memory: dm.memory, layout: dm.layout,
          arena: { off, bytes: windowBytes }, dirtyLog: options.dirtyLog?.placement ?? null, provider,
        }, options.callTimeoutMs));
      }
    } catch (err) {
      local.close();
      await Promise.all(remotes.map((r) => r.stop()));
      for (const off of windows) dm.arena.release(off);
      throw err;
    }
    const verbs = new ShardedVerbs(local, remotes);
    verbs.arenaWindows = windows;
    verbs.dm = dm;
    return verbs;
  }

  private arenaWindows: number[] = [];
  private dm: DeviceMemory | null = null;

  get shardCount(): number {
    return this.shards.length;
  }

  /** The shard that runs QP `qpn` (whose packets the kernel steers to it). */
  shardOf(qpn: number): number {
    return (qpn >>> 0) % this.shards.length;
  }

  // ---- objects every shard holds ---------------------------------------------------------------

  allocPd(): number {
    return this.everywhere<number>('allocPd', [], (pd) => ['deallocPd', [pd]]);
  }

  deallocPd(pd: number): void {
    for (const [qpn, q] of this.qps) if (q.pd === pd) throw new VerbsError(VerbsErrorCode.Busy, `PD ${pd} is used by QP ${qpn}`);
    this.onEvery('deallocPd', [pd]);
  }

  registerPhysical(pd: number, reg: PhysicalRegistration): MrKeys {
    return this.everywhere<MrKeys>('registerPhysical', [pd, reg], (k) => ['deregMr', [k.lkey]], (a, b) => a.lkey === b.lkey && a.rkey === b.rkey);
  }

  registerAll(pd: number, access: number): MrKeys {
    return this.everywhere<MrKeys>('registerAll', [pd, access], (k) => ['deregMr', [k.lkey]], (a, b) => a.lkey === b.lkey && a.rkey === b.rkey);
  }

  /** As SoftRoce's, which keeps an MR's PD through a re-registration. */
  reregisterPhysical(lkey: number, reg: PhysicalRegistration | 'all-memory'): void {
    this.onEvery('reregisterPhysical', [lkey, reg]);
  }

  deregMr(lkey: number): void {
    this.onEvery('deregMr', [lkey]);
  }

  createCq(depth: number): number {
    const cq = this.everywhere<number>('createCq', [depth], (h) => ['destroyCq', [h]]);
    this.cqs.set(cq, new SoftCq(cq, depth));
    return cq;
  }

  destroyCq(cq: number): void {
    for (const [qpn, q] of this.qps) if (q.sendCq === cq || q.recvCq === cq) throw new VerbsError(VerbsErrorCode.Busy, `CQ ${cq} is used by QP ${qpn}`);
    this.onEvery('destroyCq', [cq]);
    this.cqs.delete(cq);
  }

  pollCq(cq: number, max: number): WorkCompletion[] {
    if (!Number.isInteger(max) || max < 0) throw invalid(`poll count ${max} is not a count`);
    return this.cq(cq).poll(max);
  }

  reqNotifyCq(cq: number, solicitedOnly: boolean): void {
    const c = this.cq(cq);
    c.armed = solicitedOnly && c.armed !== 'all' ? 'solicited' : 'all';
  }

  onCompletion(handler: (cq: number) => void): void {
    this.completionHandlers.push(handler);
  }

  createSrq(pd: number, maxWr: number, maxSge: number, limit: number): number {
    return this.everywhere<number>('createSrq', [pd, maxWr, maxSge, limit], (h) => ['destroySrq', [h]]);
  }

  modifySrq(srq: number, limit: number): void {
    this.shards[0].call('modifySrq', [srq, limit]);
  }

  destroySrq(srq: number): void {
    for (const [qpn, q] of this.qps) if (q.srq === srq) throw new VerbsError(VerbsErrorCode.Busy, `SRQ ${srq} is used by QP ${qpn}`);
    this.onEvery('destroySrq', [srq]);
  }

  createAh(pd: number, av: AddressVector): number {
    return this.everywhere<number>('createAh', [pd, av], (h) => ['destroyAh', [h]]);
  }

  destroyAh(ah: number): void {
    this.onEvery('destroyAh', [ah]);
  }

  addGid(index: number, gid: string): void {
    this.everywhere<null>('addGid', [index, gid], () => ['delGid', [index]], () => true);
  }

  delGid(index: number): void {
    this.onEvery('delGid', [index]);
  }

  // ---- QPs: each on its own shard --------------------------------------------------------------

  createQp(options: CreateQpOptions): number {
    const n = this.shards.length;
    let qpn: number;
    if (options.qpn !== undefined) {
      qpn = options.qpn;
      if (!Number.isInteger(qpn) || qpn < MIN_QPN || qpn > MAX_QPN) throw invalid(`QPN ${qpn} outside [${MIN_QPN}, ${MAX_QPN}]`);
      if (this.qps.has(qpn)) throw new VerbsError(VerbsErrorCode.Exists, `QPN ${qpn} is taken`);
      if (options.srq !== undefined && qpn % n !== 0) {
        throw new VerbsError(VerbsErrorCode.NotSupported, `QP ${qpn} would run on shard ${qpn % n}, but a QP on an SRQ must run on shard 0 with its SRQ (a QPN that is a multiple of ${n})`);
      }
    } else {
      qpn = this.pickQpn(options.srq === undefined ? null : 0);
    }
    const shard = qpn % n;
    const made = this.shards[shard].call('createQp', [{ ...options, qpn }]) as number;
    if (made !== qpn) throw new VerbsError(VerbsErrorCode.IoError, `shard ${shard} made QP ${made} when asked for ${qpn}`);
    this.qps.set(qpn, { shard, pd: options.pd, sendCq: options.sendCq, recvCq: options.recvCq, srq: options.srq });
    return qpn;
  }

  modifyQp(qpn: number, attrs: Partial<QpAttributes>, mask: number): void {
    this.onQp(qpn, 'modifyQp', [qpn, attrs, mask]);
  }

  queryQp(qpn: number): QpAttributes {
    return this.onQp(qpn, 'queryQp', [qpn]) as QpAttributes;
  }

  destroyQp(qpn: number): void {
    this.onQp(qpn, 'destroyQp', [qpn]);
    this.qps.delete(qpn);
  }

  postSend(qpn: number, wrs: SendWr[]): void {
    this.post(qpn, 'postSend', wrs);
  }

  postRecv(qpn: number, wrs: RecvWr[]): void {
    this.post(qpn, 'postRecv', wrs);
  }

  postSrqRecv(srq: number, wrs: RecvWr[]): void {
    this.shards[0].call('postSrqRecv', [srq, wrs]);
  }

  suspendQp(qpn: number, policy: 'rnr-nak' | 'drop'): void {
    this.onQp(qpn, 'suspendQp', [qpn, policy]);
  }

  resumeQp(qpn: number): void {
    this.onQp(qpn, 'resumeQp', [qpn]);
  }

  saveState(): Uint8Array {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'a device whose QPs run in shards cannot save its state yet (docs/worker-pool.md, "QP shards")');
  }

  restoreState(): void {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'a device whose QPs run in shards cannot restore a state yet (docs/worker-pool.md, "QP shards")');
  }

  // ---- counters and lifecycle -------------------------------------------------------------------

  /** Each shard's counters and packet counts, shard 0 first (a lost shard's are zeros). */
  shardCounters(): ShardCounters[] {
    return this.shards.map((s, i) => {
      if (i === 0) return shardCounters(this.local);
      const r = this.remotes[i - 1];
      if (!r.alive) return { dropped: [], events: [], internalErrors: 0, lastInternalError: null, sent: 0, received: 0 };
      return s.call('counters', []) as ShardCounters;
    });
  }

  /** Every shard's counters added up, as one SoftRoce's. */
  get counters(): SoftRoceCounters {
    const out: SoftRoceCounters = { dropped: new Map(), events: new Map(), internalErrors: 0, lastInternalError: null };
    for (const c of this.shardCounters()) {
      for (const [k, v] of c.dropped) out.dropped.set(k, (out.dropped.get(k) ?? 0) + v);
      for (const [k, v] of c.events) out.events.set(k, (out.events.get(k) ?? 0) + v);
      out.internalErrors += c.internalErrors;
      if (c.lastInternalError !== null) out.lastInternalError = new Error(c.lastInternalError);
    }
    return out;
  }

  /** End worker shard `index` at once, as a crash would (what the tests use to lose one). */
  async killShard(index: number): Promise<void> {
    const r = this.remotes[index - 1];
    if (r === undefined) throw new RangeError(`no worker shard ${index}`);
    await r.terminate();
    await r.exited;
  }

  /** Stop every shard: shard 0 here at once, the workers after their owed ACKs (await `stopped`). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.local.close();
    const dm = this.dm;
    const windows = this.arenaWindows;
    this.stopped = Promise.all(this.remotes.map((r) => r.stop())).then(() => {
      if (dm !== null) for (const off of windows) dm.arena.release(off);
    });
  }

  // ---- inside -------------------------------------------------------------------------------

  private cq(cq: number): SoftCq {
    const c = this.cqs.get(cq);
    if (c === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no CQ ${cq}`);
    return c;
  }

  private onQp(qpn: number, method: string, args: unknown[]): unknown {
    const place = this.qps.get(qpn);
    if (place === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no QP ${qpn}`);
    return this.shards[place.shard].call(method, args);
  }

  private post(qpn: number, method: 'postSend' | 'postRecv', wrs: readonly (SendWr | RecvWr)[]): void {
    const place = this.qps.get(qpn);
    if (place === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no QP ${qpn}`);
    if (place.shard === 0) return void this.shards[0].call(method, [qpn, wrs]);
    this.remotes[place.shard - 1].post(qpn, method === 'postSend' ? POST_SEND : POST_RECV, wrs);
  }

  /** A number for a new QP: the next free one from the cursor, on `shard` if one is asked for. */
  private pickQpn(shard: number | null): number {
    const n = this.shards.length;
    const span = MAX_QPN - MIN_QPN + 1;
    for (let i = 0; i < span; i++) {
      const c = this.qpnCursor;
      this.qpnCursor = c === MAX_QPN ? MIN_QPN : c + 1;
      if (!this.qps.has(c) && (shard === null || c % n === shard)) return c;
    }
    throw new VerbsError(VerbsErrorCode.NoResources, 'no QPN left');
  }

  /**
   * Make an object on every shard in turn; each must answer as shard 0 did. If one refuses or
   * answers otherwise, the shards that made it undo it and the call fails as a whole.
   */
  private everywhere<T>(method: string, args: unknown[], undo: (v: T) => [string, unknown[]], same: (a: T, b: T) => boolean = (a, b) => a === b): T {
    const first = this.shards[0].call(method, args) as T;
    for (let i = 1; i < this.shards.length; i++) {
      let v: T;
      try {
        v = this.shards[i].call(method, args) as T;
      } catch (err) {
        this.undoOn(i, undo(first));
        throw err;
      }
      if (!same(v, first)) {
        const [m, a] = undo(v);
        this.shards[i].call(m, a);
        this.undoOn(i, undo(first));
        throw new VerbsError(VerbsErrorCode.IoError, `${method}: shard ${i} answered ${JSON.stringify(v)} where shard 0 answered ${JSON.stringify(first)}`);
      }
    }
    return first;
  }

  private undoOn(count: number, [method, args]: [string, unknown[]]): void {
    for (let i = 0; i < count; i++) {
      try {
        this.shards[i].call(method, args);
      } catch {
        // Best effort: the call failing is what the caller hears about.
      }
    }
  }

  /**
   * Change or destroy an object every shard holds. Shard 0 goes first: what it refuses, every
   * shard would (they hold the same objects), and nothing has changed. A later shard refusing
   * means they disagree: an IO_ERROR, which is a bug.
   */
  private onEvery(method: string, args: unknown[]): void {
    this.shards[0].call(method, args);
    for (let i = 1; i < this.shards.length; i++) {
      try {
        this.shards[i].call(method, args);
      } catch (err) {
        throw new VerbsError(VerbsErrorCode.IoError, `${method}: shard ${i} refused what shard 0 did: ${(err as Error).message}`);
      }
    }
  }

  /** Shard 0's completions for `cq`, moved into the device's CQ here. */
  private pullLocal(cq: number): void {
    const c = this.cqs.get(cq);
    if (c === undefined) return;
    try {
      for (;;) {
        const wcs = this.local.pollCq(cq, 256);
        for (const wc of wcs) c.push(wc, wc.solicited === true);
        if (wcs.length < 256) break;
      }
    } catch {
      c.overrun = true;
    }
    this.notify(cq);
  }

  private async readCompletions(shard: RemoteShard): Promise<void> {
    const ring = shard.completions;
    while (!this.closed) {
      const seen = ring.bell;
      this.drainRing(ring);
      if (!shard.alive) break;
      await ring.wait(seen, 250);
    }
  }

  private drainRing(ring: PacketRing): void {
    const touched = new Set<number>();
    ring.pop((bytes, cqNum, kind) => {
      if (kind === RECORD_REFUSED) {
        const cq = this.refused(cqNum, bytes);
        if (cq !== null) touched.add(cq);
        return;
      }
      const c = this.cqs.get(cqNum);
      if (c === undefined) return;
      touched.add(cqNum);
      if (kind === RECORD_OVERRUN) {
        c.overrun = true;
        return;
      }
      for (let off = 0; off + WC_RECORD_BYTES <= bytes.length; off += WC_RECORD_BYTES) {
        const wc = decodeWc(bytes.subarray(off, off + WC_RECORD_BYTES));
        c.push(wc, wc.solicited === true);
      }
    });
    for (const cq of touched) this.notify(cq);
  }

  /** Work requests of QP `qpn` a shard refused at posting: LOC_QP_OP_ERR completions, as the device's own refusals. Returns a CQ touched. */
  private refused(qpn: number, bytes: Uint8Array): number | null {
    const place = this.qps.get(qpn);
    if (place === undefined) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let touched: number | null = null;
    for (let off = 0; off + REFUSED_BYTES <= bytes.length; off += REFUSED_BYTES) {
      const recv = view.getUint32(off + 12, true) === 1;
      const cq = recv ? place.recvCq : place.sendCq;
      const c = this.cqs.get(cq);
      if (c === undefined) continue;
      c.push({
        wrId: view.getBigUint64(off, true), status: WcStatus.LocQpOpErr, opcode: view.getUint32(off + 8, true), vendorErr: 0, byteLen: 0, immData: 0,
        qpNum: qpn, srcQp: 0, wcFlags: 0, pkeyIndex: 0, slid: 0, sl: 0, dlidPathBits: 0,
      }, false);
      touched = cq;
    }
    return touched;
  }

  private notify(cq: number): void {
    for (const h of this.completionHandlers) h(cq);
  }
}
