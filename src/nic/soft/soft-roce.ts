// SoftRoce: vrdma's own RoCE v2 verbs provider, the default. One instance is one device (one
// VM's function): it owns that guest's DeviceMemory and one Link, whose IPv4 address is its GID
// (R7). Objects are numbered as the Verbs interface names them; the transport roles of
// src/nic/roce move the data, and every packet in or out is checked or sealed with its ICRC.
import type { DeviceMemory } from '../../memory/device-memory.js';
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import { IdAllocator } from '../ids.js';
import type { Link, LinkAddress } from '../link.js';
import { QpState, QpType } from '../qp-state.js';
import { type CompleterIo, runCompleter } from '../roce/completer.js';
import { RoceError } from '../roce/errors.js';
import { bthDqpn, bthDqpnAt, bthPkey } from '../roce/headers.js';
import { BTH_BYTES, OpFlag } from '../roce/opcodes.js';
import { type ResponderIo, respond } from '../roce/responder.js';
import { dropsUnchecked, suspendedRequest, suspendedResponse } from '../roce/suspended.js';
import type {
  AddressVector, CreateQpOptions, DeviceLimits, MrKeys, PhysicalRegistration, ProviderCapabilities, ProviderStateSummary, QpAttributes,
  RecvWr, SendWr, Verbs, WorkCompletion,
} from '../verbs.js';
import { SoftCq } from './cq.js';
import { GidTable } from './gid-table.js';
import { InputDrain } from './input-drain.js';
import { MrTable } from './mr-table.js';
import { type AtomicIntent, DEFAULT_BUDGET_PACKETS, DEFAULT_LIMITS, DEFAULT_RETRY_BACKOFF_CEILING_MS, DEFAULT_WINDOW_PSNS, MAX_QPN, MIN_QPN, type SoftRoceOptions } from './options.js';
import type { AtomicOp } from '../roce/transport-qp.js';
import { type SendContext, recvWqeOf, sendWqeOf } from './post.js';
import { checkAv } from './qp-attrs.js';
import { type QpEnv, SoftQp } from './qp.js';
import { RunClock } from './run-clock.js';
import { SoftSrq } from './srq.js';
import { SoftWire } from './wire.js';
import { PathMtu } from '../types.js';
import type { SoftAh, SoftRoceCounters, SoftRoceParts } from './state/parts.js';
import { captureQp, captureSoftRoce } from './state/capture.js';
import { emptyCounters } from './state/types.js';
import { checkQp } from './state/check.js';
import { decodeSoftRoceState, encodeSoftRoceState } from './state/codec.js';
import { inspectSoftRoce, loadQp as loadSavedQp, restoreSoftRoce } from './state/rebuild.js';

const U64_MASK = (1n << 64n) - 1n;

export type { SoftRoceCounters };

const CAPABILITIES: ProviderCapabilities = Object.freeze({
  physicalMr: true,
  allMemoryMr: true,
  // The page tables can be on-demand, but the fault path (R3) is not wired up yet.
  onDemandPaging: false,
  // Every write into guest memory is marked in the device memory's dirty log (mr-table.ts).
  dirtyLog: true,
  chosenQpn: true,
  suspendQp: true,
  saveState: true,
});

export class SoftRoce implements Verbs {
  readonly name = 'soft-roce';
  readonly capabilities = CAPABILITIES;
  readonly limits: DeviceLimits;
  readonly counters: SoftRoceCounters = { dropped: new Map(), events: new Map(), internalErrors: 0, lastInternalError: null };
  private readonly mrs: MrTable;
  private readonly wire: SoftWire;
  private readonly gids: GidTable;
  private readonly pdIds: IdAllocator;
  private readonly cqIds: IdAllocator;
  private readonly qpIds: IdAllocator;
  private readonly srqIds: IdAllocator;
  private readonly ahIds: IdAllocator;
  private readonly pds = new Set<number>();
  private readonly cqs = new Map<number, SoftCq>();
  /** Each QP's posting context (postSend), made at its first post; gone with the QP. */
  private readonly sendContexts = new WeakMap<SoftQp, SendContext>();
  private readonly qps = new Map<number, SoftQp>();
  private readonly srqs = new Map<number, SoftSrq>();
  private readonly ahs = new Map<number, SoftAh>();
  private readonly completionHandlers: ((cq: number) => void)[] = [];
  private readonly eventHandlers: ((cq: number) => void)[] = [];
  private readonly srqLimitHandlers: ((srq: number) => void)[] = [];
  private readonly notifyQueued = new Set<number>();
  private readonly env: QpEnv;
  private readonly portMtu: PathMtu;
  private closed = false;

  constructor(readonly dm: DeviceMemory, readonly link: Link, options: SoftRoceOptions = {}) {
    const engine = options.engine ?? 'wasm';
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...options.limits });
    this.portMtu = options.portMtu ?? PathMtu.Mtu4096;
    this.gids = new GidTable(this.limits.maxGid, link.localIp);
    this.mrs = new MrTable(dm, engine, this.limits.maxMr, this.limits.maxMrBytes, options.kernels);
    this.wire = new SoftWire(dm, link, engine, options.kernels);
    this.pdIds = new IdAllocator('PD', 1, this.limits.maxPd);
    this.cqIds = new IdAllocator('CQ', 1, this.limits.maxCq);
    this.qpIds = new IdAllocator('QPN', MIN_QPN, MAX_QPN);
    this.srqIds = new IdAllocator('SRQ', 1, this.limits.maxSrq);
    this.ahIds = new IdAllocator('AH', 1, this.limits.maxAh);
    const dropped = (reason: string): void => this.drop(reason);
    const count = (event: string, n = 1): void => {
      this.counters.events.set(event, (this.counters.events.get(event) ?? 0) + n);
    };
    const clock = new RunClock();
    const drain = new InputDrain(() => this.wire.counters.received, () => clock.nowMs());
    const completerIo: CompleterIo = { memory: this.mrs, dropped, count };
    const responderIo: ResponderIo = { memory: this.mrs, wire: this.wire, localIp: link.localIp, maxMsgBytes: this.limits.maxMsgBytes, dropped, count };
    this.env = {
      memory: this.mrs,
      wire: this.wire,
      requesterConfig: {
        windowPsns: options.windowPsns ?? DEFAULT_WINDOW_PSNS,
        budgetPackets: options.budgetPackets ?? DEFAULT_BUDGET_PACKETS,
        maxMsgBytes: this.limits.maxMsgBytes,
      },
      completerIo,
      responderIo,
      count,
      attrContext: { limits: this.limits, portMtu: this.portMtu, gids: this.gids, localIp: link.localIp },
      deliver: (cq, wc, solicited) => this.deliver(cq, wc, solicited),
      guard: (qp, what, fn) => this.guard(qp, what, fn),
      clock,
      drain,
      retryBackoffCeilingMs: options.retryBackoffCeilingMs ?? DEFAULT_RETRY_BACKOFF_CEILING_MS,
      beforeAtomic: options.beforeAtomic === undefined ? undefined : (qpn, psn, op) => this.atomicIntent(qpn, psn, op, options.beforeAtomic!),
    };
    link.onPacket((bytes, from) => this.receive(bytes, from));
  }

  /**
   * How the event loop treated the device's ACK timers: stalls seen and the milliseconds of them
   * not counted (run-clock.ts), and turns an expired timer waited for the input (input-drain.ts).
   */
  get loopStats(): { stalls: number; stalledMs: number; drainTurns: number } {
    return { stalls: this.env.clock.stalls, stalledMs: Math.round(this.env.clock.discountedMs), drainTurns: this.env.drain.deferredTurns };
  }

  /** Packets sent and received through the link (every one, before any check). */
  get packetCounts(): { sent: number; received: number } {
    return { sent: this.wire.counters.sent, received: this.wire.counters.received };
  }

  // ---- PDs ----------------------------------------------------------------------------------

  allocPd(): number {
    const pd = this.pdIds.allocate();
    this.pds.add(pd);
    return pd;
  }

  deallocPd(pd: number): void {
    this.pd(pd);
    const inUse = this.mrs.countInPd(pd) + [...this.qps.values()].filter((q) => q.options.pd === pd).length +
      [...this.ahs.values()].filter((a) => a.pd === pd).length + [...this.srqs.values()].filter((s) => s.pd === pd).length;
    if (inUse > 0) throw new VerbsError(VerbsErrorCode.Busy, `PD ${pd} still has ${inUse} objects`);
    this.pds.delete(pd);
    this.pdIds.release(pd);
  }

  // ---- MRs ----------------------------------------------------------------------------------

  registerPhysical(pd: number, reg: PhysicalRegistration): MrKeys {
    this.pd(pd);
    return this.mrs.registerPhysical(pd, reg);
  }

  registerAll(pd: number, access: number): MrKeys {
    this.pd(pd);
    return this.mrs.registerAll(pd, access);
  }

  reregisterPhysical(lkey: number, reg: PhysicalRegistration | 'all-memory'): void {
    this.mrs.reregister(lkey, reg);
  }

  deregMr(lkey: number): void {
    this.mrs.deregister(lkey);
  }

  // ---- CQs ----------------------------------------------------------------------------------

  createCq(depth: number): number {
    if (!Number.isInteger(depth) || depth < 1 || depth > this.limits.maxCqe) throw invalid(`CQ depth ${depth} outside [1, ${this.limits.maxCqe}]`);
    const handle = this.cqIds.allocate();
    this.cqs.set(handle, new SoftCq(handle, depth));
    return handle;
  }

  destroyCq(cq: number): void {
    const c = this.cq(cq);
    if (c.users > 0) throw new VerbsError(VerbsErrorCode.Busy, `CQ ${cq} is used by ${c.users} QPs`);
    this.cqs.delete(cq);
    this.cqIds.release(cq);
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

  /** CQ events: an armed CQ (reqNotifyCq) got the completion it was armed for. */
  onCqEvent(handler: (cq: number) => void): void {
    this.eventHandlers.push(handler);
  }

  /** SRQ limit events: an SRQ fell below its armed limit. */
  onSrqLimit(handler: (srq: number) => void): void {
    this.srqLimitHandlers.push(handler);
  }

  // ---- QPs ----------------------------------------------------------------------------------

  createQp(o: CreateQpOptions): number {
    if (o.type !== QpType.Rc && o.type !== QpType.Ud) throw new VerbsError(VerbsErrorCode.NotSupported, `QP type ${String(o.type)} is not supported`);
    this.pd(o.pd);
    const sendCq = this.cq(o.sendCq);
    const recvCq = this.cq(o.recvCq);
    const srq = o.srq === undefined ? null : this.srq(o.srq);
    const cap = o.cap;
    const L = this.limits;
    const within = (name: string, v: number, max: number): void => {
      if (!Number.isInteger(v) || v < 0 || v > max) throw invalid(`${name} ${v} outside [0, ${max}]`);
    };
    within('max send WRs', cap.maxSendWr, L.maxQpWr);
    within('max receive WRs', cap.maxRecvWr, L.maxQpWr);
    within('max send SGEs', cap.maxSendSge, L.maxSge);
    within('max receive SGEs', cap.maxRecvSge, L.maxSge);
    within('max inline bytes', cap.maxInlineBytes, L.maxInlineBytes);
    if (this.qps.size >= L.maxQp) throw new VerbsError(VerbsErrorCode.NoResources, `no more than ${L.maxQp} QPs`);
    const qpn = o.qpn === undefined ? this.qpIds.allocate() : this.qpIds.reserve(o.qpn);
    this.keep(new SoftQp(qpn, { ...o, cap: { ...cap } }, sendCq, recvCq, srq, this.env));
    return qpn;
  }

  modifyQp(qpn: number, attrs: Partial<QpAttributes>, mask: number): void {
    this.qp(qpn).modify(attrs, mask);
  }

  queryQp(qpn: number): QpAttributes {
    return this.qp(qpn).query();
  }

  destroyQp(qpn: number): void {
    const qp = this.qp(qpn);
    qp.destroy();
    this.forget(qp);
  }

  /** A QP built here joins the provider: its CQs and SRQ count it, its number is taken. */
  private keep(qp: SoftQp): void {
    qp.sendCq.users++;
    qp.recvCq.users++;
    if (qp.srq !== null) qp.srq.users++;
    this.qps.set(qp.qpn, qp);
  }

  /** A QP leaves the provider (destroyed, or moved elsewhere). */
  private forget(qp: SoftQp): void {
    qp.sendCq.users--;
    qp.recvCq.users--;
    if (qp.srq !== null) qp.srq.users--;
    this.qps.delete(qp.qpn);
    this.qpIds.release(qp.qpn);
  }

  // ---- SRQs ---------------------------------------------------------------------------------

  createSrq(pd: number, maxWr: number, maxSge: number, limit: number): number {
    this.pd(pd);
    if (!Number.isInteger(maxWr) || maxWr < 1 || maxWr > this.limits.maxSrqWr) throw invalid(`SRQ size ${maxWr} outside [1, ${this.limits.maxSrqWr}]`);
    if (!Number.isInteger(maxSge) || maxSge < 1 || maxSge > this.limits.maxSge) throw invalid(`SRQ SGEs ${maxSge} outside [1, ${this.limits.maxSge}]`);
    if (!Number.isInteger(limit) || limit < 0 || limit > maxWr) throw invalid(`SRQ limit ${limit} outside [0, ${maxWr}]`);
    const handle = this.srqIds.allocate();
    this.srqs.set(handle, new SoftSrq(handle, pd, maxWr, maxSge, limit, (s) => this.srqLimit(s)));
    return handle;
  }

  modifySrq(srq: number, limit: number): void {
    const s = this.srq(srq);
    if (!Number.isInteger(limit) || limit < 0 || limit > s.maxWr) throw invalid(`SRQ limit ${limit} outside [0, ${s.maxWr}]`);
    s.limit = limit;
  }

  destroySrq(srq: number): void {
    const s = this.srq(srq);
    if (s.users > 0) throw new VerbsError(VerbsErrorCode.Busy, `SRQ ${srq} is used by ${s.users} QPs`);
    this.srqs.delete(srq);
    this.srqIds.release(srq);
  }

  // ---- AHs and GIDs -------------------------------------------------------------------------

  createAh(pd: number, av: AddressVector): number {
    this.pd(pd);
    checkAv(av, this.env.attrContext);
    const handle = this.ahIds.allocate();
    this.ahs.set(handle, { pd, av: { ...av } });
    return handle;
  }

  destroyAh(ah: number): void {
    if (!this.ahs.delete(ah)) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no AH ${ah}`);
    this.ahIds.release(ah);
  }

  addGid(index: number, gid: string): void {
    this.gids.add(index, gid);
  }

  delGid(index: number): void {
    this.gids.delete(index);
  }

  // ---- posting ------------------------------------------------------------------------------

  postSend(qpn: number, wrs: SendWr[]): void {
    const qp = this.qp(qpn);
    const context = this.sendContextOf(qp);
    for (const wr of wrs) {
      if (qp.t.sq.length >= qp.options.cap.maxSendWr) throw new VerbsError(VerbsErrorCode.NoResources, `send queue of QP ${qpn} is full`);
      qp.pushSend(sendWqeOf(wr, context));
    }
  }

  /** What posting to `qp` checks against, made once per QP (its state read at each post). */
  private sendContextOf(qp: SoftQp): SendContext {
    let c = this.sendContexts.get(qp);
    if (c === undefined) {
      const { pd, cap, sigAll } = qp.options;
      c = {
        type: qp.type, get state() { return qp.state; }, pd, maxSge: cap.maxSendSge, maxInlineBytes: cap.maxInlineBytes,
        sigAll, memory: this.mrs, ah: (h) => this.ahFor(h, pd),
      };
      this.sendContexts.set(qp, c);
    }
    return c;
  }

  postRecv(qpn: number, wrs: RecvWr[]): void {
    const qp = this.qp(qpn);
    if (qp.srq !== null) throw invalid(`QP ${qpn} receives from SRQ ${qp.srq.handle}`);
    for (const wr of wrs) {
      if (qp.state === QpState.Reset) throw invalid('a QP in RESET takes no work requests');
      if (qp.rq.length >= qp.options.cap.maxRecvWr) throw new VerbsError(VerbsErrorCode.NoResources, `receive queue of QP ${qpn} is full`);
      qp.pushRecv(recvWqeOf(wr, qp.options.cap.maxRecvSge));
    }
  }

  postSrqRecv(srq: number, wrs: RecvWr[]): void {
    const s = this.srq(srq);
    for (const wr of wrs) {
      if (s.wqes.length >= s.maxWr) throw new VerbsError(VerbsErrorCode.NoResources, `SRQ ${srq} is full`);
      s.wqes.push(recvWqeOf(wr, s.maxSge));
    }
  }

  // ---- migration ----------------------------------------------------------------------------

  /** R6 (docs/device-spec.md §9.3): from RTR, RTS, SQD or SQE; anything else is INVALID_ARGUMENT. */
  suspendQp(qpn: number, policy: 'rnr-nak' | 'drop'): void {
    const qp = this.qp(qpn);
    if (policy !== 'rnr-nak' && policy !== 'drop') throw invalid(`suspend policy ${String(policy)} is not 'rnr-nak' or 'drop'`);
    qp.suspend(policy);
  }

  /** R6: back to the state the QP was suspended from; INVALID_ARGUMENT if it is not SUSPENDED. */
  resumeQp(qpn: number): void {
    this.qp(qpn).resume();
  }

  /**
   * R9: every resource in one buffer (docs/state-format.md, a Provider-kind state). Meant for
   * QPs that are SUSPENDED (or quiet): what a QP is doing is captured as it stands.
   */
  saveState(): Uint8Array {
    return encodeSoftRoceState(captureSoftRoce(this.parts()));
  }

  /**
   * The objects a new shard of this device starts from (src/nic/shard): R9's state without the
   * QPs, the completions queued, the SRQs' receives and the counters, which are each shard's own.
   * restoreState takes it.
   */
  saveObjects(): Uint8Array {
    const st = captureSoftRoce(this.parts());
    return encodeSoftRoceState({
      ...st,
      cqs: st.cqs.map((cq) => ({ ...cq, armed: 'none', overrun: false, entries: [] })),
      srqs: st.srqs.map((srq) => ({ ...srq, wqes: [] })),
      qps: [],
      counters: emptyCounters(),
    });
  }

  /**
   * One QP's whole state: R9's records with only this QP (and no other object), for moving it to
   * another shard of this device (src/nic/shard). It must be SUSPENDED (R6), so it does nothing
   * and its state holds still. It stays here until detachQp.
   */
  saveQp(qpn: number): Uint8Array {
    const qp = this.qp(qpn);
    if (qp.state !== QpState.Suspended) throw invalid(`QP ${qpn} must be SUSPENDED to be saved alone`);
    const ids = { pd: this.pdIds, cq: this.cqIds, qp: this.qpIds, srq: this.srqIds, ah: this.ahIds };
    return encodeSoftRoceState({
      localIp: this.link.localIp, portMtu: this.portMtu,
      allocators: { pd: ids.pd.cursor, cq: ids.cq.cursor, qp: ids.qp.cursor, srq: ids.srq.cursor, ah: ids.ah.cursor, keys: { cursor: this.mrs.keyState().cursor, tags: [] } },
      gids: [], pds: [], mrs: [], cqs: [], srqs: [], ahs: [], qps: [captureQp(qp)],
      counters: emptyCounters(),
    });
  }

  /** Remove a QP saved with saveQp, completing nothing: it runs on elsewhere. */
  detachQp(qpn: number): void {
    const qp = this.qp(qpn);
    if (qp.state !== QpState.Suspended) throw invalid(`QP ${qpn} must be SUSPENDED to leave`);
    qp.detach();
    this.forget(qp);
  }

  /**
   * Take in a QP another shard of this device saved (saveQp), SUSPENDED as it was; resumeQp sets
   * it going. Its CQs, SRQ, PD and any MR its responder is writing into must be here (every shard
   * holds the same objects). StateError or VerbsError if not; nothing is kept then.
   */
  loadQp(state: Uint8Array): number {
    if (this.closed) throw new VerbsError(VerbsErrorCode.InvalidArgument, 'the provider is closed');
    const s = decodeSoftRoceState(state);
    const others = s.pds.length + s.mrs.length + s.cqs.length + s.srqs.length + s.ahs.length + s.gids.length;
    if (s.qps.length !== 1 || others !== 0) throw invalid(`a saved QP holds one QP and nothing else, not ${s.qps.length} QPs and ${others} other objects`);
    if (s.localIp !== this.link.localIp) throw invalid(`a QP saved on ${s.localIp} cannot run on ${this.link.localIp}`);
    const q = s.qps[0];
    if (this.qps.has(q.qpn)) throw new VerbsError(VerbsErrorCode.Exists, `QP ${q.qpn} is here already`);
    if (this.qps.size >= this.limits.maxQp) throw new VerbsError(VerbsErrorCode.NoResources, `no more than ${this.limits.maxQp} QPs`);
    this.pd(q.pd);
    const sendCq = this.cq(q.sendCq);
    const recvCq = this.cq(q.recvCq);
    const srq = q.srq === 0 ? null : this.srq(q.srq);
    checkQp(q, this.limits, this.portMtu, new Set(this.mrs.list().map((mr) => mr.key)), `QP ${q.qpn}`, srq === null ? q.cap.maxRecvSge : srq.maxSge);
    this.qpIds.reserve(q.qpn);
    const options = { type: q.type, pd: q.pd, sendCq: q.sendCq, recvCq: q.recvCq, srq: q.srq === 0 ? undefined : q.srq, cap: { ...q.cap }, sigAll: q.sigAll, qpn: q.qpn };
    const qp = new SoftQp(q.qpn, options, sendCq, recvCq, srq, this.env);
    loadSavedQp(qp, q, this.mrs);
    this.keep(qp);
    return q.qpn;
  }

  /**
   * R9: rebuild every resource of a saved state on this provider, which must hold no objects
   * and be bound to the same address. Everything is checked before anything is built; a refused
   * state (StateError) leaves the provider as it was. QPs that were sending come back SUSPENDED.
   */
  restoreState(state: Uint8Array): void {
    if (this.closed) throw new VerbsError(VerbsErrorCode.InvalidArgument, 'the provider is closed');
    restoreSoftRoce(this.parts(), state);
  }

  /** R9: check a state against this provider without building anything; what it holds. */
  inspectState(state: Uint8Array): ProviderStateSummary {
    return inspectSoftRoce(this.parts(), state);
  }

  /** What the state code reaches inside this provider (src/nic/soft/state/parts.ts). */
  private parts(): SoftRoceParts {
    return {
      dm: this.dm, localIp: this.link.localIp, limits: this.limits, portMtu: this.portMtu, counters: this.counters,
      wireCounters: this.wire.counters, mrs: this.mrs, gids: this.gids,
      ids: { pd: this.pdIds, cq: this.cqIds, qp: this.qpIds, srq: this.srqIds, ah: this.ahIds },
      pds: this.pds, cqs: this.cqs, qps: this.qps, srqs: this.srqs, ahs: this.ahs,
      newCq: (handle, depth) => new SoftCq(handle, depth),
      newSrq: (handle, pd, maxWr, maxSge, limit) => new SoftSrq(handle, pd, maxWr, maxSge, limit, (x) => this.srqLimit(x)),
      newQp: (qpn, options, sendCq, recvCq, srq) => new SoftQp(qpn, options, sendCq, recvCq, srq, this.env),
    };
  }

  /** Stop every QP's timers and ignore the network from now on; the link stays the caller's. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const qpn of [...this.qps.keys()]) this.destroyQp(qpn);
    this.env.drain.stop();
    this.env.clock.stop();
  }

  // ---- the datapath entry: one arriving packet ----------------------------------------------

  private receive(bytes: Uint8Array, from: LinkAddress): void {
    if (this.closed) return;
    try {
      // A request a suspended QP will not answer costs no ICRC check (suspended.ts).
      const target = bytes.length >= BTH_BYTES ? this.qps.get(bthDqpnAt(bytes, 0)) : undefined;
      if (target?.state === QpState.Suspended && dropsUnchecked(target.t, this.env.responderIo, bytes)) return;
      const pkt = this.wire.parse(bytes, from);
      if (pkt instanceof RoceError) return this.drop(pkt.code);
      const qp = this.qps.get(bthDqpn(pkt));
      if (qp === undefined) return this.drop('unknown QPN');
      // One P_Key, the default full-membership 0xFFFF; limited members match too (10.9.3).
      if ((bthPkey(pkt) & 0x7fff) !== 0x7fff) return this.drop('P_Key mismatch');
      if (pkt.info.transport !== (qp.type === QpType.Rc ? 'RC' : 'UD')) return this.drop('opcode for another QP type');
      // An RC QP talks to one peer; anything else is not part of its connection.
      if (qp.type === QpType.Rc && from.ip !== qp.t.attrs.dstIp) return this.drop('not from the connected peer');
      if (qp.state === QpState.Suspended) {
        const request = (pkt.info.flags & OpFlag.Request) !== 0;
        const io = this.env.responderIo;
        this.guard(qp, 'suspended', () => (request ? suspendedRequest(qp.t, io, pkt) : suspendedResponse(qp.t, io, pkt)));
        return;
      }
      if ((pkt.info.flags & OpFlag.Request) !== 0) {
        this.guard(qp, 'responder', () => respond(qp.t, this.env.responderIo, pkt, from.ip));
      } else {
        const s = qp.state;
        if (s !== QpState.Rts && s !== QpState.Sqd) return this.drop('response while not sending');
        this.guard(qp, 'completer', () => runCompleter(qp.t, this.env.completerIo, { kind: 'packet', pkt }));
      }
    } catch (err) {
      this.counters.internalErrors++;
      this.counters.lastInternalError = err;
    }
  }

  /**
   * SoftRoceOptions.beforeAtomic with the target resolved: the word the atomic will change, its
   * value now and after the operation. A refused access writes nothing and needs no intent.
   */
  private atomicIntent(qpn: number, psn: number, op: AtomicOp, commit: (intent: AtomicIntent) => void): void {
    const offset = this.mrs.atomicTarget(op.region, op.va);
    if (offset === null) return;
    const before = this.mrs.loadWord(offset);
    const after = op.add ? (before + op.compareAdd) & U64_MASK : before === op.compareAdd ? op.swap : before;
    commit({ qpn, psn, opcode: op.opcode, rkey: op.rkey, va: op.va, offset, before, after });
  }

  private guard(qp: SoftQp, what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A bug, not a network event: contain it to the QP, which stops in ERR.
      this.counters.internalErrors++;
      this.counters.lastInternalError = new Error(`${what} of QP ${qp.qpn} threw`, { cause: err });
      try {
        qp.enterError();
      } catch {
        // already reported
      }
    }
  }

  private drop(reason: string): void {
    this.counters.dropped.set(reason, (this.counters.dropped.get(reason) ?? 0) + 1);
  }

  private deliver(cq: SoftCq, wc: WorkCompletion, solicited: boolean): boolean {
    const fire = cq.push(wc, solicited);
    if (fire === null) return false;
    if (!this.notifyQueued.has(cq.handle)) {
      this.notifyQueued.add(cq.handle);
      queueMicrotask(() => {
        this.notifyQueued.delete(cq.handle);
        for (const h of this.completionHandlers) h(cq.handle);
      });
    }
    if (fire) queueMicrotask(() => this.eventHandlers.forEach((h) => h(cq.handle)));
    return true;
  }

  private srqLimit(srq: number): void {
    queueMicrotask(() => this.srqLimitHandlers.forEach((h) => h(srq)));
  }

  // ---- lookups ------------------------------------------------------------------------------

  private pd(pd: number): void {
    if (!this.pds.has(pd)) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no PD ${pd}`);
  }

  private cq(cq: number): SoftCq {
    const c = this.cqs.get(cq);
    if (c === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no CQ ${cq}`);
    return c;
  }

  private qp(qpn: number): SoftQp {
    const q = this.qps.get(qpn);
    if (q === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no QP ${qpn}`);
    return q;
  }

  private srq(srq: number): SoftSrq {
    const s = this.srqs.get(srq);
    if (s === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no SRQ ${srq}`);
    return s;
  }

  private ahFor(handle: number, pd: number): string {
    const ah = this.ahs.get(handle);
    if (ah === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no AH ${handle}`);
    if (ah.pd !== pd) throw invalid(`AH ${handle} is in PD ${ah.pd}, the QP in PD ${pd}`);
    return ah.av.dgid;
  }
}
