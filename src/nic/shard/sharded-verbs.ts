// QP shards: one device's QPs spread over several threads (docs/worker-pool.md, "QP shards").
// The device keeps its virtqueues, control queue and CQ writing on its own thread and calls this
// facade as its verbs provider. Behind it are N SoftRoce shards over the device's one shared
// memory (shard-set.ts): shard 0 on the device's thread, shards 1..N-1 in worker threads. Each
// shard holds the QPs whose number modulo N is its index, and its own socket in the VM address's
// SO_REUSEPORT group, where a BPF program steers every arriving packet by destination QPN to that
// same shard (BatchedUdpLink's qpnSteering): a QP's requester, responder, completer and timers all
// run in one thread, its owner, with no lock on the data path.
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
import { type ShardCounters, shardCounters } from './shard-methods.js';
import type { ShardProviderOptions } from './shard-worker.js';
import { RECORD_OVERRUN, RECORD_REFUSED, REFUSED_BYTES, WC_RECORD_BYTES, decodeWc } from './wc-codec.js';

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
  options: CreateQpOptions;
  /** Outstanding work of a QP in a worker shard (null on shard 0, which lives as long as this facade). */
  ledger: QpLedger | null;
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
    const provider = options.provider ?? {};
    const local = new SoftRoce(dm, link, provider);
    try {
      return new ShardedVerbs(local, await ShardSet.open(dm, link, local, { shards: n, provider, dirtyLog: options.dirtyLog, callTimeoutMs: options.callTimeoutMs }));
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
      if (options.srq !== undefined && qpn % n !== 0) {
        throw new VerbsError(VerbsErrorCode.NotSupported, `QP ${qpn} would run on shard ${qpn % n}, but a QP on an SRQ must run on shard 0 with its SRQ (a QPN that is a multiple of ${n})`);
      }
    } else {
      qpn = this.pickQpn(options.srq === undefined ? null : 0);
    }
    const place: QpPlace = { shard: qpn % n, options: { ...options, cap: { ...options.cap } }, ledger: null, attrs: null, lost: false };
    this.make(qpn, place);
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
    this.set.call(place.shard, 'modifyQp', [qpn, attrs, mask]);
    if (place.ledger !== null) place.attrs = this.set.call(place.shard, 'queryQp', [qpn]) as QpAttributes;
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
  }

  postSend(qpn: number, wrs: SendWr[]): void {
    const place = this.place(qpn);
    if (place.shard === 0) return this.local.postSend(qpn, wrs);
    if (place.lost) return this.flushNow(wrs.map((wr) => flushedWc(qpn, wr.wrId, wcOpcodeOf(wr.opcode))), place.options.sendCq);
    this.set.post(place.shard, qpn, POST_SEND, wrs);
    for (const wr of wrs) place.ledger!.postedSend(wr.wrId, wcOpcodeOf(wr.opcode));
  }

  postRecv(qpn: number, wrs: RecvWr[]): void {
    const place = this.place(qpn);
    if (place.shard === 0) return this.local.postRecv(qpn, wrs);
    if (place.lost) return this.flushNow(wrs.map((wr) => flushedWc(qpn, wr.wrId, WcOpcode.Recv)), place.options.recvCq);
    this.set.post(place.shard, qpn, POST_RECV, wrs);
    for (const wr of wrs) place.ledger!.postedRecv(wr.wrId);
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
    if (place.shard !== 0) {
      const { maxSendWr, maxRecvWr } = place.options.cap;
      place.ledger = new QpLedger(qpn, maxSendWr, maxRecvWr);
      place.attrs = this.set.call(place.shard, 'queryQp', [qpn]) as QpAttributes;
    }
  }

  /** A number for a new QP: the next free one from the cursor on a running shard, on `shard` if one is asked for. */
  private pickQpn(shard: number | null): number {
    const n = this.set.count;
    const span = MAX_QPN - MIN_QPN + 1;
    for (let i = 0; i < span; i++) {
      const c = this.qpnCursor;
      this.qpnCursor = c === MAX_QPN ? MIN_QPN : c + 1;
      if (!this.qps.has(c) && (shard === null ? this.set.live(c % n) : c % n === shard)) return c;
    }
    throw new VerbsError(VerbsErrorCode.NoResources, 'no QPN left');
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
        for (const wc of wcs) c.push(wc, wc.solicited === true);
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
        this.qps.get(wc.qpNum)?.ledger?.completed(wc);
        c.push(wc, wc.solicited === true);
      }
    });
    for (const cq of touched) this.notify(cq);
  }

  /** Work requests of QP `qpn` a shard refused at posting: LOC_QP_OP_ERR completions, as the device's own refusals. */
  private refused(qpn: number, bytes: Uint8Array, touched: Set<number>): void {
    const place = this.qps.get(qpn);
    if (place === undefined) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let off = 0; off + REFUSED_BYTES <= bytes.length; off += REFUSED_BYTES) {
      const recv = view.getUint32(off + 12, true) === 1;
      const cq = recv ? place.options.recvCq : place.options.sendCq;
      const wc: WorkCompletion = { ...flushedWc(qpn, view.getBigUint64(off, true), view.getUint32(off + 8, true)), status: WcStatus.LocQpOpErr };
      place.ledger?.completed(wc);
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
      const { sends, recvs } = place.ledger!.flush();
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
