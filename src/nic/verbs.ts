// The verbs interface: the "ibverbs library" the device executes guest requests with, extended
// with what migration needs (DESIGN.md R1–R9). Objects are named by numbers (handles, keys,
// QPNs) rather than JS objects, because the guest names them by number and device state moves
// between hosts as numbers. Two providers implement it: SoftRoce (vrdma's RoCE v2 engine, the
// default) and Ibverbs (native addon; what today's hardware cannot do is NotSupported).
import type { Gpa } from '../memory/gpa.js';
import type { PathMtu, WcOpcode, WcStatus, WrOpcode } from './types.js';
import type { QpState, QpType } from './qp-state.js';

/** Device limits (docs/device-spec.md, "Device limits"). */
export interface DeviceLimits {
  maxQp: number;
  maxQpWr: number;
  maxSge: number;
  maxInlineBytes: number;
  maxCq: number;
  maxCqe: number;
  maxMr: number;
  maxMrBytes: number;
  maxPd: number;
  maxSrq: number;
  maxSrqWr: number;
  maxAh: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxMsgBytes: number;
  maxGid: number;
}

/** An address vector: where a QP's (or a UD work request's) packets go. RoCE v2 over IPv4. */
export interface AddressVector {
  /** The peer's GID as an IPv4-mapped address ("127.0.1.5"). */
  dgid: string;
  /** Index of the local GID to send from. */
  sgidIndex: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;
  sl: number;
}

/** QP attributes; which fields a modify uses is given by the QpAttr mask (qp-state.ts). */
export interface QpAttributes {
  qpState: QpState;
  curQpState: QpState;
  pathMtu: PathMtu;
  qkey: number;
  rqPsn: number;
  sqPsn: number;
  destQpNum: number;
  qpAccessFlags: number;
  pkeyIndex: number;
  portNum: number;
  /** Local ACK timeout exponent: 4.096 us * 2^timeout; 0 means infinite. */
  timeout: number;
  retryCnt: number;
  /** 7 means retry forever. */
  rnrRetry: number;
  /** IBTA encoded minimum RNR NAK timer (a table index, 0..31). */
  minRnrTimer: number;
  maxRdAtomic: number;
  maxDestRdAtomic: number;
  ahAttr: AddressVector;
  /** Send queue drained notification requested with SQD. */
  enSqdAsyncNotify: boolean;
}

export interface QpCapabilities {
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineBytes: number;
}

export interface CreateQpOptions {
  type: QpType;
  pd: number;
  sendCq: number;
  recvCq: number;
  srq?: number;
  cap: QpCapabilities;
  /** If every send WR completes, or only those flagged SIGNALED. */
  sigAll: boolean;
  /** R5: a chosen QPN (a migrated QP keeps its number); refused with EEXIST if taken. */
  qpn?: number;
}

/** A scatter/gather element: `length` bytes at `addr` (an iova) through local key `lkey`. */
export interface Sge {
  addr: number;
  length: number;
  lkey: number;
}

export interface SendWr {
  wrId: bigint;
  opcode: WrOpcode;
  /** SendFlags bits. */
  flags: number;
  sgList: Sge[];
  /** Inline payload (SendFlags.INLINE): the bytes, copied at post time. */
  inline?: Uint8Array;
  /** ImmDt as a u32 whose big-endian bytes go on the wire. */
  immData?: number;
  invalidateRkey?: number;
  remoteAddr?: number;
  rkey?: number;
  /** Atomics: compare value (CAS) or addend (FETCH_ADD); swap value (CAS). */
  compareAdd?: bigint;
  swap?: bigint;
  /** UD: address handle, remote QPN and Q_Key. */
  ah?: number;
  remoteQpn?: number;
  remoteQkey?: number;
}

export interface RecvWr {
  wrId: bigint;
  sgList: Sge[];
}

export interface WorkCompletion {
  wrId: bigint;
  status: WcStatus;
  opcode: WcOpcode;
  vendorErr: number;
  byteLen: number;
  /**
   * Immediate data (WcFlags.WITH_IMM) as a u32 whose big-endian bytes are the ImmDt bytes, or
   * the invalidated rkey (WcFlags.WITH_INV).
   */
  immData: number;
  qpNum: number;
  srcQp: number;
  /** WcFlags bits. */
  wcFlags: number;
  pkeyIndex: number;
  slid: number;
  sl: number;
  dlidPathBits: number;
  /** A receive of a message with the solicited event bit (what SOLICITED arming waits for). */
  solicited?: boolean;
}

/** R1: a registration whose key and iova are separate from the guest pages it covers. */
export interface PhysicalRegistration {
  iova: number;
  length: number;
  /** Access bits (types.ts Access). */
  access: number;
  /** 12 (4 KiB) or 21 (2 MiB). */
  pageShift: 12 | 21;
  /** Guest-physical address of each page, in iova order. */
  pages: readonly Gpa[];
  /** LOCAL_INV and a peer's SEND_WITH_INV may invalidate it (IBTA 10.6); absent means no. */
  invalidatable?: boolean;
}

export interface MrKeys {
  lkey: number;
  rkey: number;
}

/** What a provider can do, so callers can refuse early and clearly (STYLE.md item 8). */
export interface ProviderCapabilities {
  physicalMr: boolean;
  allMemoryMr: boolean;
  onDemandPaging: boolean;
  dirtyLog: boolean;
  chosenQpn: boolean;
  suspendQp: boolean;
  saveState: boolean;
}

/** R9: the objects a saved provider state holds, by number (a device checks its own against it). */
export interface ProviderStateSummary {
  pds: readonly number[];
  cqs: readonly number[];
  srqs: readonly number[];
  ahs: readonly number[];
  qps: readonly { qpn: number; type: QpType }[];
  mrKeys: readonly number[];
  gids: readonly { index: number; ip: string }[];
}

export interface Verbs {
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  readonly limits: DeviceLimits;

  allocPd(): number;
  deallocPd(pd: number): void;

  /** R1. */
  registerPhysical(pd: number, reg: PhysicalRegistration): MrKeys;
  /** R2: one MR over all guest memory; holes read as zeros and swallow writes. */
  registerAll(pd: number, access: number): MrKeys;
  /**
   * R2: re-map after hotplug or a new page list; lkey and rkey stay the same. `pd`, when given,
   * moves the MR to that PD (ibv_rereg_mr's IBV_REREG_MR_CHANGE_PD).
   */
  reregisterPhysical(lkey: number, reg: PhysicalRegistration | 'all-memory', pd?: number): void;
  deregMr(lkey: number): void;
  /**
   * R3: prefetch pages of MRs (ibv_advise_mr; advice and flags as verbs.h numbers them). Optional:
   * a provider without it cannot take ADVISE_MR, and the device does not offer on-demand paging.
   */
  adviseMr?(advice: number, flags: number, sges: readonly Sge[]): void;

  createCq(depth: number): number;
  destroyCq(cq: number): void;
  /** Take up to `max` completions. */
  pollCq(cq: number, max: number): WorkCompletion[];
  /** Arm the CQ: the next completion (or next solicited one) raises its event. */
  reqNotifyCq(cq: number, solicitedOnly: boolean): void;
  /**
   * Be told when a CQ has new completions to poll, armed or not. The virtio device uses this to
   * move completions into the guest's CQ virtqueue at once; arming is its own business there.
   */
  onCompletion(handler: (cq: number) => void): void;

  createQp(options: CreateQpOptions): number;
  modifyQp(qpn: number, attrs: Partial<QpAttributes>, mask: number): void;
  queryQp(qpn: number): QpAttributes;
  destroyQp(qpn: number): void;

  createSrq(pd: number, maxWr: number, maxSge: number, limit: number): number;
  modifySrq(srq: number, limit: number): void;
  destroySrq(srq: number): void;

  createAh(pd: number, av: AddressVector): number;
  destroyAh(ah: number): void;

  addGid(index: number, gid: string): void;
  delGid(index: number): void;

  postSend(qpn: number, wrs: SendWr[]): void;
  postRecv(qpn: number, wrs: RecvWr[]): void;
  postSrqRecv(srq: number, wrs: RecvWr[]): void;

  /** R6: stop sending; answer incoming requests with RNR NAK or drop them. */
  suspendQp(qpn: number, policy: 'rnr-nak' | 'drop'): void;
  resumeQp(qpn: number): void;

  /** R9: every resource of the device in one versioned buffer, and back. */
  saveState(): Uint8Array;
  restoreState(state: Uint8Array): void;
  /**
   * R9: check a state as restoreState would, on this provider, without building anything, and
   * say what it holds. Optional; a device restores its own state only over a provider that has it.
   */
  inspectState?(state: Uint8Array): ProviderStateSummary;
}

export type { QpState, QpType, WcStatus, WrOpcode };
