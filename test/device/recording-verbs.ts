// A recording verbs provider for device tests: a real in-memory object table (PDs, MRs, CQs, QPs,
// SRQs, AHs, GIDs) with the verbs layer's checks (VerbsError for bad handles and busy objects, the
// IBTA transition table of qp-state.ts), which records every posted work request and lets a test
// complete them (or deliver receives) in any way a provider could. It moves no packets.
import { VerbsError, VerbsErrorCode, invalid } from '../../src/nic/errors.js';
import { IdAllocator, KeyAllocator } from '../../src/nic/ids.js';
import { QpAttr, QpState, QpType, checkTransition } from '../../src/nic/qp-state.js';
import { WcOpcode, WcStatus, wcOpcodeOf } from '../../src/nic/types.js';
import type {
  AddressVector, CreateQpOptions, DeviceLimits, MrKeys, PhysicalRegistration, ProviderCapabilities, QpAttributes, RecvWr, SendWr, Sge, Verbs,
  WorkCompletion,
} from '../../src/nic/verbs.js';

const none = (what: string, id: number) => new VerbsError(VerbsErrorCode.NoSuchObject, `no ${what} ${id}`);
const busy = (message: string) => new VerbsError(VerbsErrorCode.Busy, message);

export const TEST_LIMITS: DeviceLimits = {
  maxQp: 64, maxQpWr: 1024, maxSge: 16, maxInlineBytes: 256, maxCq: 64, maxCqe: 4096, maxMr: 256, maxMrBytes: 2 ** 40, maxPd: 64, maxSrq: 16,
  maxSrqWr: 4096, maxAh: 64, maxQpRdAtom: 16, maxQpInitRdAtom: 16, maxMsgBytes: 2 ** 30, maxGid: 16,
};

interface MrRecord {
  pd: number;
  keys: MrKeys;
  reg: PhysicalRegistration | 'all-memory';
  access: number;
}

interface QpRecord {
  options: CreateQpOptions;
  attrs: Partial<QpAttributes>;
  state: QpState;
  beforeSuspend: QpState;
  sends: SendWr[];
  recvs: RecvWr[];
}

export class RecordingVerbs implements Verbs {
  readonly name = 'recording';
  readonly capabilities: ProviderCapabilities = {
    physicalMr: true, allMemoryMr: true, onDemandPaging: true, dirtyLog: false, chosenQpn: true, suspendQp: true, saveState: true,
  };
  private readonly pdIds: IdAllocator;
  readonly pds = new Set<number>();
  private readonly keys: KeyAllocator;
  readonly mrs = new Map<number, MrRecord>();
  private readonly cqIds: IdAllocator;
  readonly cqs = new Map<number, { depth: number; wcs: WorkCompletion[]; armed: number }>();
  private readonly qpIds = new IdAllocator('QPN', 16, 0xffffff);
  private readonly gsi = new IdAllocator('GSI QPN', 1, 1);
  readonly qps = new Map<number, QpRecord>();
  private readonly srqIds: IdAllocator;
  readonly srqs = new Map<number, { pd: number; maxWr: number; maxSge: number; limit: number; recvs: RecvWr[] }>();
  private readonly ahIds: IdAllocator;
  readonly ahs = new Map<number, { pd: number; av: AddressVector }>();
  readonly gids = new Map<number, string>();
  /** Every work request posted, in order, with its QP (or SRQ). */
  readonly posted: { qpn?: number; srq?: number; kind: 'send' | 'recv'; wr: SendWr | RecvWr }[] = [];
  readonly advised: { advice: number; flags: number; sges: readonly Sge[] }[] = [];
  private handler: ((cq: number) => void) | null = null;
  /** Make the next call of this method throw this error (fault injection for atomicity tests). */
  failNext: { method: string; error: VerbsError } | null = null;

  constructor(readonly limits: DeviceLimits = TEST_LIMITS) {
    this.pdIds = new IdAllocator('PD', 100, 100 + limits.maxPd - 1);
    this.keys = new KeyAllocator(limits.maxMr);
    this.cqIds = new IdAllocator('CQ', 200, 200 + limits.maxCq - 1);
    this.srqIds = new IdAllocator('SRQ', 300, 300 + limits.maxSrq - 1);
    this.ahIds = new IdAllocator('AH', 400, 400 + limits.maxAh - 1);
  }

  private fault(method: string): void {
    if (this.failNext?.method === method) {
      const { error } = this.failNext;
      this.failNext = null;
      throw error;
    }
  }

  /** Count of live objects of every kind: the state a failed command must not change. */
  census(): string {
    const live = [...this.qps.entries()].map(([q, r]) => `${q}:${r.state}`).join(',');
    return `pd=${this.pds.size} mr=${this.mrs.size} cq=${this.cqs.size} qp=${this.qps.size}[${live}] srq=${this.srqs.size} ah=${this.ahs.size} gid=${[...this.gids.entries()].join(';')}`;
  }

  allocPd(): number {
    this.fault('allocPd');
    const pd = this.pdIds.allocate();
    this.pds.add(pd);
    return pd;
  }

  deallocPd(pd: number): void {
    if (!this.pds.has(pd)) throw none('PD', pd);
    const users = [...this.mrs.values()].some((m) => m.pd === pd) || [...this.qps.values()].some((q) => q.options.pd === pd) ||
      [...this.srqs.values()].some((s) => s.pd === pd) || [...this.ahs.values()].some((a) => a.pd === pd);
    if (users) throw busy(`PD ${pd} in use`);
    this.pds.delete(pd);
    this.pdIds.release(pd);
  }

  registerPhysical(pd: number, reg: PhysicalRegistration): MrKeys {
    this.fault('registerPhysical');
    if (!this.pds.has(pd)) throw none('PD', pd);
    if (reg.pages.length !== Math.ceil(((reg.iova % 2 ** reg.pageShift) + reg.length) / 2 ** reg.pageShift)) throw invalid('page count');
    const key = this.keys.allocate();
    const keys = { lkey: key, rkey: key };
    this.mrs.set(key, { pd, keys, reg, access: reg.access });
    return keys;
  }

  registerAll(pd: number, access: number): MrKeys {
    this.fault('registerAll');
    if (!this.pds.has(pd)) throw none('PD', pd);
    const key = this.keys.allocate();
    const keys = { lkey: key, rkey: key };
    this.mrs.set(key, { pd, keys, reg: 'all-memory', access });
    return keys;
  }

  reregisterPhysical(lkey: number, reg: PhysicalRegistration | 'all-memory', pd?: number): void {
    this.fault('reregisterPhysical');
    const mr = this.mrs.get(lkey);
    if (mr === undefined) throw none('MR', lkey);
    if (pd !== undefined && !this.pds.has(pd)) throw none('PD', pd);
    mr.reg = reg;
    if (reg !== 'all-memory') mr.access = reg.access;
    if (pd !== undefined) mr.pd = pd;
  }

  deregMr(lkey: number): void {
    if (!this.mrs.has(lkey)) throw none('MR', lkey);
    this.mrs.delete(lkey);
    this.keys.release(lkey);
  }

  adviseMr(advice: number, flags: number, sges: readonly Sge[]): void {
    for (const s of sges) if (!this.mrs.has(s.lkey)) throw none('MR', s.lkey);
    this.advised.push({ advice, flags, sges });
  }

  createCq(depth: number): number {
    this.fault('createCq');
    if (depth < 1 || depth > this.limits.maxCqe) throw invalid(`CQ depth ${depth}`);
    const cq = this.cqIds.allocate();
    this.cqs.set(cq, { depth, wcs: [], armed: 0 });
    return cq;
  }

  destroyCq(cq: number): void {
    if (!this.cqs.has(cq)) throw none('CQ', cq);
    if ([...this.qps.values()].some((q) => q.options.sendCq === cq || q.options.recvCq === cq)) throw busy(`CQ ${cq} in use`);
    this.cqs.delete(cq);
    this.cqIds.release(cq);
  }

  pollCq(cq: number, max: number): WorkCompletion[] {
    const c = this.cqs.get(cq);
    if (c === undefined) throw none('CQ', cq);
    return c.wcs.splice(0, max);
  }

  reqNotifyCq(cq: number, solicitedOnly: boolean): void {
    const c = this.cqs.get(cq);
    if (c === undefined) throw none('CQ', cq);
    c.armed = solicitedOnly ? 1 : 2;
  }

  onCompletion(handler: (cq: number) => void): void {
    this.handler = handler;
  }

  createQp(options: CreateQpOptions): number {
    this.fault('createQp');
    if (!this.pds.has(options.pd)) throw none('PD', options.pd);
    if (!this.cqs.has(options.sendCq)) throw none('CQ', options.sendCq);
    if (!this.cqs.has(options.recvCq)) throw none('CQ', options.recvCq);
    if (options.srq !== undefined && !this.srqs.has(options.srq)) throw none('SRQ', options.srq);
    const qpn = options.qpn === undefined ? this.qpIds.allocate() : options.qpn === 1 ? this.gsi.reserve(1) : this.qpIds.reserve(options.qpn);
    this.qps.set(qpn, { options, attrs: {}, state: QpState.Reset, beforeSuspend: QpState.Reset, sends: [], recvs: [] });
    return qpn;
  }

  modifyQp(qpn: number, attrs: Partial<QpAttributes>, mask: number): void {
    this.fault('modifyQp');
    const qp = this.qp(qpn);
    const to = mask & QpAttr.STATE ? (attrs.qpState as QpState) : qp.state;
    const why = checkTransition(qp.options.type, qp.state, to, mask);
    if (why !== null) throw invalid(why);
    for (const [name, bit] of ATTR_BITS) if (mask & bit) (qp.attrs as Record<string, unknown>)[name] = (attrs as Record<string, unknown>)[name];
    qp.state = to;
    if (to === QpState.Reset) {
      qp.sends.length = 0;
      qp.recvs.length = 0;
      qp.attrs = {};
    } else if (to === QpState.Err) {
      this.flush(qpn, qp);
    }
  }

  queryQp(qpn: number): QpAttributes {
    const qp = this.qp(qpn);
    return { ...(qp.attrs as QpAttributes), qpState: qp.state, curQpState: qp.state };
  }

  destroyQp(qpn: number): void {
    this.qp(qpn);
    this.qps.delete(qpn);
    if (qpn === 1) this.gsi.release(1);
    else this.qpIds.release(qpn);
  }

  createSrq(pd: number, maxWr: number, maxSge: number, limit: number): number {
    this.fault('createSrq');
    if (!this.pds.has(pd)) throw none('PD', pd);
    const srq = this.srqIds.allocate();
    this.srqs.set(srq, { pd, maxWr, maxSge, limit, recvs: [] });
    return srq;
  }

  modifySrq(srq: number, limit: number): void {
    const s = this.srqs.get(srq);
    if (s === undefined) throw none('SRQ', srq);
    s.limit = limit;
  }

  destroySrq(srq: number): void {
    if (!this.srqs.has(srq)) throw none('SRQ', srq);
    if ([...this.qps.values()].some((q) => q.options.srq === srq)) throw busy(`SRQ ${srq} in use`);
    this.srqs.delete(srq);
    this.srqIds.release(srq);
  }

  createAh(pd: number, av: AddressVector): number {
    this.fault('createAh');
    if (!this.pds.has(pd)) throw none('PD', pd);
    const ah = this.ahIds.allocate();
    this.ahs.set(ah, { pd, av });
    return ah;
  }

  destroyAh(ah: number): void {
    if (!this.ahs.delete(ah)) throw none('AH', ah);
    this.ahIds.release(ah);
  }

  addGid(index: number, gid: string): void {
    this.fault('addGid');
    if (this.gids.has(index)) throw new VerbsError(VerbsErrorCode.Exists, `GID ${index}`);
    this.gids.set(index, gid);
  }

  delGid(index: number): void {
    if (!this.gids.delete(index)) throw none('GID', index);
  }

  postSend(qpn: number, wrs: SendWr[]): void {
    const qp = this.qp(qpn);
    if (qp.state !== QpState.Rts && qp.state !== QpState.Sqd && qp.state !== QpState.Err) throw invalid(`post send in state ${qp.state}`);
    for (const wr of wrs) {
      this.posted.push({ qpn, kind: 'send', wr });
      qp.sends.push(wr);
    }
    if (qp.state === QpState.Err) this.flush(qpn, qp);
  }

  postRecv(qpn: number, wrs: RecvWr[]): void {
    const qp = this.qp(qpn);
    if (qp.state === QpState.Reset) throw invalid('post recv in RESET');
    for (const wr of wrs) {
      this.posted.push({ qpn, kind: 'recv', wr });
      qp.recvs.push(wr);
    }
    if (qp.state === QpState.Err) this.flush(qpn, qp);
  }

  postSrqRecv(srq: number, wrs: RecvWr[]): void {
    const s = this.srqs.get(srq);
    if (s === undefined) throw none('SRQ', srq);
    for (const wr of wrs) {
      this.posted.push({ srq, kind: 'recv', wr });
      s.recvs.push(wr);
    }
  }

  suspendQp(qpn: number, _policy: 'rnr-nak' | 'drop'): void {
    const qp = this.qp(qpn);
    qp.beforeSuspend = qp.state;
    qp.state = QpState.Suspended;
  }

  resumeQp(qpn: number): void {
    const qp = this.qp(qpn);
    qp.state = qp.beforeSuspend;
  }

  saveState(): Uint8Array {
    return new TextEncoder().encode(this.census());
  }

  restoreState(_state: Uint8Array): void {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'the recording provider does not restore');
  }

  // ---- test controls -------------------------------------------------------------------------

  /** Complete the oldest outstanding send of `qpn` (as the engine would once the peer acked). */
  completeSend(qpn: number, status = WcStatus.Success, extra: Partial<WorkCompletion> = {}): WorkCompletion {
    const qp = this.qp(qpn);
    const wr = qp.sends.shift();
    if (wr === undefined) throw new Error(`QP ${qpn} has no outstanding send`);
    const wc = this.wc(wr.wrId, qpn, status, wcOpcodeOf(wr.opcode), extra);
    this.push(qp.options.sendCq, wc);
    return wc;
  }

  /** A message arrived for the oldest receive of `qpn` (or of its SRQ). */
  deliverRecv(qpn: number, byteLen: number, extra: Partial<WorkCompletion> = {}): WorkCompletion {
    const qp = this.qp(qpn);
    const queue = qp.options.srq !== undefined ? (this.srqs.get(qp.options.srq)?.recvs ?? []) : qp.recvs;
    const wr = queue.shift();
    if (wr === undefined) throw new Error(`QP ${qpn} has no receive posted`);
    const wc = this.wc(wr.wrId, qpn, extra.status ?? WcStatus.Success, WcOpcode.Recv, { byteLen, ...extra });
    this.push(qp.options.recvCq, wc);
    return wc;
  }

  outstanding(qpn: number): { sends: number; recvs: number } {
    const qp = this.qp(qpn);
    return { sends: qp.sends.length, recvs: qp.recvs.length };
  }

  stateOf(qpn: number): QpState {
    return this.qp(qpn).state;
  }

  private wc(wrId: bigint, qpn: number, status: WcStatus, opcode: WcOpcode, extra: Partial<WorkCompletion>): WorkCompletion {
    return {
      wrId, status, opcode, vendorErr: 0, byteLen: 0, immData: 0, qpNum: qpn, srcQp: 0, wcFlags: 0, pkeyIndex: 0, slid: 0, sl: 0, dlidPathBits: 0,
      ...extra,
    };
  }

  private push(cq: number, wc: WorkCompletion): void {
    const c = this.cqs.get(cq);
    if (c === undefined) throw none('CQ', cq);
    c.wcs.push(wc);
    this.handler?.(cq);
  }

  /** IBTA 10.3.1: in ERR every outstanding work request completes with WR_FLUSH_ERR. */
  private flush(qpn: number, qp: QpRecord): void {
    for (const wr of qp.sends.splice(0)) this.push(qp.options.sendCq, this.wc(wr.wrId, qpn, WcStatus.WrFlushErr, wcOpcodeOf(wr.opcode), { vendorErr: 12 }));
    for (const wr of qp.recvs.splice(0)) this.push(qp.options.recvCq, this.wc(wr.wrId, qpn, WcStatus.WrFlushErr, WcOpcode.Recv, { vendorErr: 12 }));
  }

  private qp(qpn: number): QpRecord {
    const qp = this.qps.get(qpn);
    if (qp === undefined) throw none('QP', qpn);
    return qp;
  }
}


const ATTR_BITS: [keyof QpAttributes, number][] = [
  ['curQpState', QpAttr.CUR_STATE], ['enSqdAsyncNotify', QpAttr.EN_SQD_ASYNC_NOTIFY], ['qpAccessFlags', QpAttr.ACCESS_FLAGS],
  ['pkeyIndex', QpAttr.PKEY_INDEX], ['portNum', QpAttr.PORT], ['qkey', QpAttr.QKEY], ['ahAttr', QpAttr.AV], ['pathMtu', QpAttr.PATH_MTU],
  ['timeout', QpAttr.TIMEOUT], ['retryCnt', QpAttr.RETRY_CNT], ['rnrRetry', QpAttr.RNR_RETRY], ['rqPsn', QpAttr.RQ_PSN],
  ['maxRdAtomic', QpAttr.MAX_QP_RD_ATOMIC], ['minRnrTimer', QpAttr.MIN_RNR_TIMER], ['sqPsn', QpAttr.SQ_PSN],
  ['maxDestRdAtomic', QpAttr.MAX_DEST_RD_ATOMIC], ['destQpNum', QpAttr.DEST_QPN],
];

export { QpType };
