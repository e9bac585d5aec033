// QP shards: one device's QPs spread over several threads (docs/worker-pool.md, "QP shards").
// The device keeps its virtqueues, control queue and CQ writing on its own thread and calls this
// facade as its verbs provider. Behind it are N SoftRoce shards over the device's one shared
// memory (shard-set.ts): shard 0 on the device's thread, shards 1..N-1 in worker threads. Each QP
// runs in one shard, its owner, named by its ownership word in shared memory (qp-owners.ts): at
// first its home, QPN mod N. Each shard holds its own socket in the VM address's SO_REUSEPORT
// group, where a BPF program steers every arriving packet by destination QPN to the QP's owner
// (BatchedUdpLink's qpnSteering; udpSteer for QPs away from home): a QP's requester, responder,
// completer and timers all run in its owner's thread, with no lock on the data path.
//
// - PDs, MRs, CQs, SRQs, AHs and GIDs are made on every shard, in the same order, so every shard
//   numbers them alike (checked: a shard that answers differently undoes the call).
// - A QP is made on its home shard; a QP on an SRQ lives on shard 0 with the SRQ's receives.
// - Any shard takes any connected QP (moveQp): suspended, its completions brought home, saved,
//   handed over by compare-and-exchange of its word, loaded, re-steered and resumed. balance()
//   moves QPs from busy shards to idle ones (work stealing at QP grain).
// - A shard's completions come back in per-shard rings in shared memory, a CQ's batch per record,
//   and are queued in this facade's CQs in the order each shard made them, so each QP's
//   completions stay in order; a CQ gathers from every shard.
// - Posts reach a worker shard through its post ring without waiting (the device posts one work
//   request at a time); a post the shard refuses comes back as a LOC_QP_OP_ERR completion rather
//   than as an exception. Control calls are synchronous (call-channel.ts), and a shard runs every
//   post queued before a call first, so a call never overtakes a post.
// - A worker shard that dies is replaced (shard-set.ts). Its QPs' state died with it: every work
//   request they had outstanding completes with WR_FLUSH_ERR (qp-ledger.ts) and they read as ERR,
//   as if the QP had failed; moved to RESET, a QP is made again on the successor and can be
//   connected anew. Nothing is lost, nothing waits forever.
// - Not yet: saving the state (R9) across shards: refused (NOT_SUPPORTED), never half done.
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { DirtyLog } from '../../migration/dirty-log.js';
import type { PacketRing } from '../../backend/packet-ring.js';
import { registerCodedError } from '../../backend/call-channel.js';
import { MAX_QPN_STEERING } from '../../net/batched-udp-link.js';
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import type { Link } from '../link.js';
import { QpAttr, QpState } from '../qp-state.js';
import { SoftCq } from '../soft/cq.js';
import { MAX_QPN, MIN_QPN } from '../soft/options.js';
import { SoftRoce } from '../soft/soft-roce.js';
import type { SoftRoceCounters } from '../soft/state/parts.js';
import { WcOpcode, WcStatus, wcOpcodeOf } from '../types.js';
import type {
  AddressVector, CreateQpOptions, DeviceLimits, MrKeys, PhysicalRegistration, ProviderCapabilities, QpAttributes, RecvWr, SendWr, Verbs,
  WorkCompletion,
} from '../verbs.js';
import { POST_RECV, POST_SEND } from './post-codec.js';
import { QpLedger, flushedWc } from './qp-ledger.js';
import { ShardSet } from './shard-set.js';
import { OWNER_SLOTS } from './qp-owners.js';
import { type ShardCounters, shardCounters } from './shard-methods.js';
import type { ShardProviderOptions } from './shard-worker.js';
import { RECORD_OVERRUN, RECORD_REFUSED, WC_RECORD_BYTES, decodeRefused, decodeWc } from './wc-codec.js';

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
  /** Balance the shards' work (balance()) this often; absent: only when asked. */
  balanceEveryMs?: number;
}

/** A QP moved by balance(): from which shard to which, and its completions since the last balance. */
export interface QpMove {
  qpn: number;
  from: number;
  to: number;
  work: number;
}

interface QpPlace {
  /** The shard that runs it, as its ownership word says (qp-owners.ts). */
  shard: number;
  options: CreateQpOptions;
  /** Its outstanding work, to be flushed if a worker shard running it dies. */
  ledger: QpLedger;
  /** The QP's attributes after its last change, for a QP whose shard died (it reads as ERR). */
  attrs: QpAttributes | null;
  /** Its shard died with its state: it reads as ERR until moved to RESET. */
  lost: boolean;
}

export class ShardedVerbs implements Verbs {
  readonly name = 'soft-roce-sharded';
  readonly capabilities: ProviderCapabilities;
  readonly limits: DeviceLimits;
  private readonly cqs = new Map<number, SoftCq>();
  private readonly qps = new Map<number, QpPlace>();
  private readonly completionHandlers: ((cq: number) => void)[] = [];
  private qpnCursor = MIN_QPN;
  private closed = false;
  private balancer: NodeJS.Timeout | null = null;
  /** QPs balance() moved, in all. */
  balanceMoves = 0;
  /** Resolves when every worker shard has stopped (after close). */
  stopped: Promise<void> = Promise.resolve();

  private constructor(readonly local: SoftRoce, private readonly set: ShardSet) {
    this.capabilities = Object.freeze({ ...local.capabilities, saveState: false });
    this.limits = local.limits;
    local.onCompletion((cq) => this.pullLocal(cq));
    set.attach({ drain: (ring) => this.drainRing(ring), lost: (index) => this.shardLost(index) });
  }

  /**
   * Shard 0 over `link` (bound to the VM's address as the first member of a steering group of
   * `options.shards`), and a worker for each other shard, each joining the group in turn.
   */
  static async open(dm: DeviceMemory, link: Link, options: ShardedVerbsOptions): Promise<ShardedVerbs> {
    const n = options.shards;
    if (!Number.isInteger(n) || n < 2 || n > MAX_SHARDS) throw new RangeError(`QP shards must be an integer in [2, ${MAX_SHARDS}], got ${n}`);
    const every = options.balanceEveryMs;
    if (every !== undefined && !(Number.isInteger(every) && every >= 1)) throw new RangeError(`balanceEveryMs must be a positive integer, got ${every}`);
    const provider = options.provider ?? {};
    const local = new SoftRoce(dm, link, provider);
    try {
      const verbs = new ShardedVerbs(local, await ShardSet.open(dm, link, local, { shards: n, provider, dirtyLog: options.dirtyLog, callTimeoutMs: options.callTimeoutMs }));
      if (every !== undefined) {
        verbs.balancer = setInterval(() => verbs.balanceQuietly(), every);
        verbs.balancer.unref();
      }
      return verbs;
    } catch (err) {
      local.close();
      throw err;
    }
  }

  get shardCount(): number {
    return this.set.count;
  }

  /** The shard that runs QP `qpn` (whose packets the kernel steers to it). */
  shardOf(qpn: number): number {
    return (qpn >>> 0) % this.set.count;
  }

  /** Worker shards that died, successors started, and why the last one was lost. */
  get losses(): { lost: number; replaced: number; last: string | null } {
    return { lost: this.set.lostCount, replaced: this.set.replacedCount, last: this.set.lastLoss };
  }

  // ---- objects every shard holds ---------------------------------------------------------------

  allocPd(): number {
    return this.everywhere<number>('allocPd', [], (pd) => ['deallocPd', [pd]]);
  }

  deallocPd(pd: number): void {
    for (const [qpn, q] of this.qps) if (q.options.pd === pd) throw new VerbsError(VerbsErrorCode.Busy, `PD ${pd} is used by QP ${qpn}`);
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
    for (const [qpn, q] of this.qps) if (q.options.sendCq === cq || q.options.recvCq === cq) throw new VerbsError(VerbsErrorCode.Busy, `CQ ${cq} is used by QP ${qpn}`);
    this.onEvery('destroyCq', [cq]);
    this.cqs.delete(cq);
  }

  pollCq(cq: number, max: number): WorkCompletion[] {
    return this.cq(cq).poll(max);
  }

  reqNotifyCq(cq: number, solicitedOnly: boolean): void {
    this.cq(cq).arm(solicitedOnly);
  }

  onCompletion(handler: (cq: number) => void): void {
    this.completionHandlers.push(handler);
  }

  createSrq(pd: number, maxWr: number, maxSge: number, limit: number): number {
    return this.everywhere<number>('createSrq', [pd, maxWr, maxSge, limit], (h) => ['destroySrq', [h]]);
  }

  modifySrq(srq: number, limit: number): void {
    this.set.call(0, 'modifySrq', [srq, limit]);
  }

  destroySrq(srq: number): void {
    for (const [qpn, q] of this.qps) if (q.options.srq === srq) throw new VerbsError(VerbsErrorCode.Busy, `SRQ ${srq} is used by QP ${qpn}`);
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
    const n = this.set.count;
    let qpn: number;
    if (options.qpn !== undefined) {
      qpn = options.qpn;
      if (!Number.isInteger(qpn) || qpn < MIN_QPN || qpn > MAX_QPN) throw invalid(`QPN ${qpn} outside [${MIN_QPN}, ${MAX_QPN}]`);
      if (this.qps.has(qpn)) throw new VerbsError(VerbsErrorCode.Exists, `QPN ${qpn} is taken`);
      if (!this.set.owners.free(qpn)) throw new VerbsError(VerbsErrorCode.Exists, `QPN ${qpn} shares its ownership word with a live QP (QPNs equal modulo ${OWNER_SLOTS})`);
      if (options.srq !== undefined && qpn % n !== 0) {
        throw new VerbsError(VerbsErrorCode.NotSupported, `QP ${qpn} would run on shard ${qpn % n}, but a QP on an SRQ must run on shard 0 with its SRQ (a QPN that is a multiple of ${n})`);
      }
    } else {
      qpn = this.pickQpn(options.srq === undefined ? null : 0);
    }
    const { maxSendWr, maxRecvWr } = options.cap;
    const place: QpPlace = { shard: qpn % n, options: { ...options, cap: { ...options.cap } }, ledger: new QpLedger(qpn, maxSendWr, maxRecvWr), attrs: null, lost: false };
    if (!this.set.owners.claim(qpn, place.shard)) throw new VerbsError(VerbsErrorCode.Exists, `QPN ${qpn}'s ownership word is taken`);
    try {
      this.make(qpn, place);
    } catch (err) {
      this.set.owners.clear(qpn);
      throw err;
    }
    this.qps.set(qpn, place);
    return qpn;
  }

  modifyQp(qpn: number, attrs: Partial<QpAttributes>, mask: number): void {
    const place = this.place(qpn);
    const to = (mask & QpAttr.STATE) !== 0 ? attrs.qpState : undefined;
    if (place.lost) {
      // The QP's state died with its shard: it is in ERR, from where only RESET (made again on the
      // successor) leads on, and ERR itself changes nothing.
      if (to === QpState.Err) return;
      if (to !== QpState.Reset) throw invalid(`QP ${qpn} is in ERR (its shard was lost): only a move to RESET or ERR is allowed`);
      this.make(qpn, place);
      place.lost = false;
      return;
    }
    const after = this.set.call(place.shard, 'modifyQp', [qpn, attrs, mask]) as QpAttributes;
    if (place.shard !== 0) place.attrs = after;
  }

  queryQp(qpn: number): QpAttributes {
    const place = this.place(qpn);
    if (place.lost) return { ...place.attrs!, qpState: QpState.Err, curQpState: QpState.Err };
    return this.set.call(place.shard, 'queryQp', [qpn]) as QpAttributes;
  }

  destroyQp(qpn: number): void {
    const place = this.place(qpn);
    if (!place.lost) this.set.call(place.shard, 'destroyQp', [qpn]);
    this.qps.delete(qpn);
    this.set.owners.clear(qpn);
    if (place.shard !== this.shardOf(qpn)) this.steer();
  }

  /**
   * Move QP `qpn` to shard `to` while it runs: any shard can take any QP. The QP is suspended
   * (R6, answering requests with RNR NAK) on its owner, which flushes the completions it made so
   * far, saves the QP's state (R9) and gives it up under its ownership word; `to` takes the word
   * and loads the state, the kernel's steering program sends the QP's packets to `to` from then
   * on, and the QP resumes there (a sequence NAK sends its peer back to the expected PSN). Its
   * completions stay in order and none is lost or repeated. The QP must be connected (RTR, RTS,
   * SQD or SQE) and not on an SRQ (whose receives are shard 0's). If anything on the way fails,
   * the QP goes back to running on its owner.
   */
  moveQp(qpn: number, to: number): void {
    const place = this.place(qpn);
    const from = place.shard;
    if (!Number.isInteger(to) || to < 0 || to >= this.set.count) throw invalid(`no shard ${to}`);
    if (to === from) return;
    if (place.lost) throw invalid(`QP ${qpn} is in ERR (its shard was lost)`);
    if (!this.set.live(to)) throw new VerbsError(VerbsErrorCode.IoError, `shard ${to} is not running`);
    if (place.options.srq !== undefined) throw new VerbsError(VerbsErrorCode.NotSupported, `QP ${qpn} receives from SRQ ${place.options.srq}, which lives on shard 0`);
    this.set.call(from, 'suspendQp', [qpn, 'rnr-nak']);
    let saved: Uint8Array;
    try {
      // Every completion the QP made on `from` reaches its CQ before any it makes on `to`.
      if (from === 0) {
        this.pullLocal(place.options.sendCq);
        this.pullLocal(place.options.recvCq);
      } else {
        for (let i = 0; i < 1000; i++) {
          const held = this.set.call(from, 'flushCompletions', [[place.options.sendCq, place.options.recvCq]]) as number;
          this.set.drainNow(from);
          if (held === 0) break;
        }
      }
      saved = this.set.call(from, 'takeQp', [qpn]) as Uint8Array;
    } catch (err) {
      this.set.call(from, 'resumeQp', [qpn]);
      throw err;
    }
    try {
      this.set.call(to, 'loadQp', [qpn, saved]);
      place.shard = to;
    } catch (err) {
      this.set.call(from, 'loadQp', [qpn, saved]);
      this.set.call(from, 'resumeQp', [qpn]);
      throw err;
    }
    try {
      this.steer();
    } finally {
      this.set.call(to, 'resumeQp', [qpn]);
    }
    if (to !== 0) place.attrs = this.set.call(to, 'queryQp', [qpn]) as QpAttributes;
  }

  /**
   * Work stealing at QP grain: QPs move from the busiest running shard to the idlest while a
   * single move makes their work since the last balance more even and the gap is worth a move
   * (above a quarter of all the work, and 64 completions). Work is completions (each QP's ledger
   * counts them). A QP that cannot move (not connected) stays. Returns the moves.
   */
  balance(): QpMove[] {
    const load = new Map<number, number>();
    for (let i = 0; i < this.set.count; i++) if (this.set.live(i)) load.set(i, 0);
    const work = new Map<number, number>();
    for (const [qpn, p] of this.qps) {
      const w = p.ledger.takeWork();
      if (p.lost || !load.has(p.shard)) continue;
      work.set(qpn, w);
      load.set(p.shard, load.get(p.shard)! + w);
    }
    const moves: QpMove[] = [];
    const stuck = new Set<number>();
    // A move pauses its QP for a moment: none for a gap within a quarter of the work (or 64 completions).
    const total = [...load.values()].reduce((x, y) => x + y, 0);
    const worth = Math.max(64, total / 4);
    for (let round = 0; round < this.qps.size && load.size > 1; round++) {
      const byLoad = [...load].sort((x, y) => y[1] - x[1]);
      const [busiest, most] = byLoad[0];
      const [idlest, least] = byLoad[byLoad.length - 1];
      const gap = most - least;
      if (gap <= worth) break;
      // The QP whose work is nearest half the gap, and below the gap (so the move narrows it).
      let best: number | null = null;
      for (const [qpn, w] of work) {
        if (this.qps.get(qpn)?.shard !== busiest || stuck.has(qpn) || w <= 0 || w >= gap) continue;
        if (best === null || Math.abs(gap / 2 - w) < Math.abs(gap / 2 - work.get(best)!)) best = qpn;
      }
      if (best === null) break;
      try {
        this.moveQp(best, idlest);
      } catch {
        stuck.add(best);
        continue;
      }
      const w = work.get(best)!;
      load.set(busiest, most - w);
      load.set(idlest, least + w);
      moves.push({ qpn: best, from: busiest, to: idlest, work: w });
    }
    this.balanceMoves += moves.length;
    return moves;
  }

  private balanceQuietly(): void {
    if (this.closed) return;
    try {
      this.balance();
    } catch {
      // A shard lost meanwhile: its QPs are ERR, the next balance works with what runs.
    }
  }

  /** What QP `qpn`'s ownership word says: the shard that runs it, 'moving', or null. */
  ownerOf(qpn: number): number | 'moving' | null {
    return this.set.owners.owner(qpn);
  }

  /** The shard of every QP, by QPN (its ownership word). */
  placement(): Map<number, number> {
    return new Map([...this.qps].map(([qpn, p]) => [qpn, p.shard]));
  }

  postSend(qpn: number, wrs: SendWr[]): void {
    const place = this.place(qpn);
    if (place.lost) return this.flushNow(wrs.map((wr) => flushedWc(qpn, wr.wrId, wcOpcodeOf(wr.opcode))), place.options.sendCq);
    if (place.shard !== 0) this.set.post(place.shard, qpn, POST_SEND, wrs);
    for (const wr of wrs) {
      // Shard 0 refuses a work request by throwing: those before it stay posted, as the ledger says.
      if (place.shard === 0) this.local.postSend(qpn, [wr]);
      place.ledger.postedSend(wr.wrId, wcOpcodeOf(wr.opcode));
    }
  }

  postRecv(qpn: number, wrs: RecvWr[]): void {
    const place = this.place(qpn);
    if (place.lost) return this.flushNow(wrs.map((wr) => flushedWc(qpn, wr.wrId, WcOpcode.Recv)), place.options.recvCq);
    if (place.shard !== 0) this.set.post(place.shard, qpn, POST_RECV, wrs);
    for (const wr of wrs) {
      if (place.shard === 0) this.local.postRecv(qpn, [wr]);
      place.ledger.postedRecv(wr.wrId);
    }
  }

  postSrqRecv(srq: number, wrs: RecvWr[]): void {
    this.local.postSrqRecv(srq, wrs);
  }

  suspendQp(qpn: number, policy: 'rnr-nak' | 'drop'): void {
    this.onLiveQp(qpn, 'suspendQp', [qpn, policy]);
  }

  resumeQp(qpn: number): void {
    this.onLiveQp(qpn, 'resumeQp', [qpn]);
  }

  saveState(): Uint8Array {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'a device whose QPs run in shards cannot save its state yet (docs/worker-pool.md, "QP shards")');
  }

  restoreState(): void {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'a device whose QPs run in shards cannot restore a state yet (docs/worker-pool.md, "QP shards")');
  }

  // ---- counters and lifecycle -------------------------------------------------------------------

  /** Each shard's counters and packet counts, shard 0 first (a shard not running reads as zeros). */
  shardCounters(): ShardCounters[] {
    return Array.from({ length: this.set.count }, (_, i) => {
      if (i === 0) return shardCounters(this.local);
      if (!this.set.live(i)) return { dropped: [], events: [], internalErrors: 0, lastInternalError: null, sent: 0, received: 0 };
      return this.set.call(i, 'counters', []) as ShardCounters;
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

  /** End worker shard `index` at once, as a crash would; resolves once its successor runs (what the tests use). */
  killShard(index: number): Promise<void> {
    return this.set.kill(index);
  }

  /** Stop every shard: shard 0 here at once, the workers after their owed ACKs (await `stopped`). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.balancer !== null) clearInterval(this.balancer);
    this.local.close();
    this.stopped = this.set.close();
  }

  // ---- inside -------------------------------------------------------------------------------

  private cq(cq: number): SoftCq {
    const c = this.cqs.get(cq);
    if (c === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no CQ ${cq}`);
    return c;
  }

  private place(qpn: number): QpPlace {
    const place = this.qps.get(qpn);
    if (place === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no QP ${qpn}`);
    return place;
  }

  private onLiveQp(qpn: number, method: string, args: unknown[]): unknown {
    const place = this.place(qpn);
    if (place.lost) throw invalid(`QP ${qpn} is in ERR (its shard was lost)`);
    return this.set.call(place.shard, method, args);
  }

  /** Make QP `qpn` on its shard (again, after its shard was lost), in RESET. */
  private make(qpn: number, place: QpPlace): void {
    const made = this.set.call(place.shard, 'createQp', [{ ...place.options, qpn }]) as number;
    if (made !== qpn) throw new VerbsError(VerbsErrorCode.IoError, `shard ${place.shard} made QP ${made} when asked for ${qpn}`);
    const { maxSendWr, maxRecvWr } = place.options.cap;
    place.ledger = new QpLedger(qpn, maxSendWr, maxRecvWr);
    if (place.shard !== 0) place.attrs = this.set.call(place.shard, 'queryQp', [qpn]) as QpAttributes;
  }

  /** A number for a new QP: the next free one from the cursor on a running shard, on `shard` if one is asked for. */
  private pickQpn(shard: number | null): number {
    const n = this.set.count;
    const span = MAX_QPN - MIN_QPN + 1;
    for (let i = 0; i < span; i++) {
      const c = this.qpnCursor;
      this.qpnCursor = c === MAX_QPN ? MIN_QPN : c + 1;
      if (!this.qps.has(c) && this.set.owners.free(c) && (shard === null ? this.set.live(c % n) : c % n === shard)) return c;
    }
    throw new VerbsError(VerbsErrorCode.NoResources, 'no QPN left');
  }

  /** Tell the kernel where every QP away from its home shard (QPN mod N) runs now. */
  private steer(): void {
    const overrides: number[] = [];
    for (const [qpn, p] of this.qps) if (p.shard !== this.shardOf(qpn)) overrides.push(qpn, p.shard);
    this.set.steer(overrides);
  }

  /** The running shards, shard 0 first. */
  private live(): number[] {
    return Array.from({ length: this.set.count }, (_, i) => i).filter((i) => this.set.live(i));
  }

  /**
   * Make an object on every running shard in turn; each must answer as shard 0 did. If one refuses
   * or answers otherwise, the shards that made it undo it and the call fails as a whole. (A shard
   * being replaced gets the objects from shard 0 when it starts.)
   */
  private everywhere<T>(method: string, args: unknown[], undo: (v: T) => [string, unknown[]], same: (a: T, b: T) => boolean = (a, b) => a === b): T {
    const shards = this.live();
    const first = this.set.call(0, method, args) as T;
    for (let k = 1; k < shards.length; k++) {
      let v: T;
      try {
        v = this.set.call(shards[k], method, args) as T;
      } catch (err) {
        this.undoOn(shards.slice(0, k), undo(first));
        throw err;
      }
      if (!same(v, first)) {
        const [m, a] = undo(v);
        this.set.call(shards[k], m, a);
        this.undoOn(shards.slice(0, k), undo(first));
        throw new VerbsError(VerbsErrorCode.IoError, `${method}: shard ${shards[k]} answered ${JSON.stringify(v)} where shard 0 answered ${JSON.stringify(first)}`);
      }
    }
    return first;
  }

  private undoOn(shards: number[], [method, args]: [string, unknown[]]): void {
    for (const i of shards) {
      try {
        this.set.call(i, method, args);
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
    const shards = this.live();
    this.set.call(0, method, args);
    for (const i of shards.slice(1)) {
      try {
        this.set.call(i, method, args);
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
        for (const wc of wcs) {
          this.qps.get(wc.qpNum)?.ledger.completed(wc);
          c.push(wc, wc.solicited === true);
        }
        if (wcs.length < 256) break;
      }
    } catch {
      c.overrun = true;
    }
    this.notify(cq);
  }

  /** A worker shard's completion ring: its completions into the device's CQs, its QPs' ledgers kept. */
  private drainRing(ring: PacketRing): void {
    const touched = new Set<number>();
    ring.pop((bytes, num, kind) => {
      if (kind === RECORD_REFUSED) return this.refused(num, bytes, touched);
      const c = this.cqs.get(num);
      if (c === undefined) return;
      touched.add(num);
      if (kind === RECORD_OVERRUN) {
        c.overrun = true;
        return;
      }
      for (let off = 0; off + WC_RECORD_BYTES <= bytes.length; off += WC_RECORD_BYTES) {
        const wc = decodeWc(bytes.subarray(off, off + WC_RECORD_BYTES));
        this.qps.get(wc.qpNum)?.ledger.completed(wc);
        c.push(wc, wc.solicited === true);
      }
    });
    for (const cq of touched) this.notify(cq);
  }

  /** Work requests of QP `qpn` a shard refused at posting: LOC_QP_OP_ERR completions, as the device's own refusals. */
  private refused(qpn: number, bytes: Uint8Array, touched: Set<number>): void {
    const place = this.qps.get(qpn);
    if (place === undefined) return;
    for (const r of decodeRefused(bytes)) {
      const cq = r.recv ? place.options.recvCq : place.options.sendCq;
      const wc: WorkCompletion = { ...flushedWc(qpn, r.wrId, r.opcode), status: WcStatus.LocQpOpErr };
      place.ledger.completed(wc);
      const c = this.cqs.get(cq);
      if (c === undefined) continue;
      c.push(wc, false);
      touched.add(cq);
    }
  }

  /** A worker shard died: its QPs fail, every work request they had outstanding completing with WR_FLUSH_ERR. */
  private shardLost(index: number): void {
    const touched = new Set<number>();
    for (const place of this.qps.values()) {
      if (place.shard !== index || place.lost) continue;
      place.lost = true;
      const { sends, recvs } = place.ledger.flush();
      for (const [wcs, cq] of [[sends, place.options.sendCq], [recvs, place.options.recvCq]] as const) {
        const c = this.cqs.get(cq);
        if (c === undefined || wcs.length === 0) continue;
        for (const wc of wcs) c.push(wc, false);
        touched.add(cq);
      }
    }
    for (const cq of touched) this.notify(cq);
  }

  /** Work posted to a QP in ERR completes at once with WR_FLUSH_ERR (told from a later turn, as a provider would). */
  private flushNow(wcs: WorkCompletion[], cq: number): void {
    const c = this.cqs.get(cq);
    if (c === undefined) return;
    for (const wc of wcs) c.push(wc, false);
    queueMicrotask(() => this.notify(cq));
  }

  private notify(cq: number): void {
    for (const h of this.completionHandlers) h(cq);
  }
}
