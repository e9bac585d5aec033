// SoftRoce's state as plain data (R9): what saveState captures and restoreState rebuilds from,
// decoded from (and encoded to) the records of docs/state-format.md. Untrusted until check.ts
// has compared it with itself and with the destination. SoftQpState is the one list of what a
// QP carries across a migration: adding a field means adding it here, in qp-codec.ts (appended
// at the end of the record, so older readers skip it) and in capture.ts / rebuild.ts.
import type { PageTableState } from '../../mr/page-table-state.js';
import type { QpState, QpType } from '../../qp-state.js';
import type { CompleterState, RequesterState, ResponderResource } from '../../roce/transport-qp.js';
import type { RecvWqe, SendWqe } from '../../roce/wqe.js';
import type { PathMtu } from '../../types.js';
import type { AddressVector, QpAttributes, QpCapabilities, WorkCompletion } from '../../verbs.js';

export interface SoftAllocatorsState {
  /** Next-fit cursors of the handle allocators. */
  pd: number;
  cq: number;
  qp: number;
  srq: number;
  ah: number;
  /** Memory keys: cursor and the last tag of every index ever used. */
  keys: { cursor: number; tags: [number, number][] };
}

export interface SoftMrState {
  key: number;
  pd: number;
  table: PageTableState;
}

export type CqArm = 'none' | 'all' | 'solicited';

export interface SoftCqState {
  handle: number;
  depth: number;
  armed: CqArm;
  overrun: boolean;
  /** Completions not yet polled, oldest first. */
  entries: WorkCompletion[];
}

export interface SoftSrqState {
  handle: number;
  pd: number;
  maxWr: number;
  maxSge: number;
  limit: number;
  wqes: RecvWqe[];
}

export interface SoftAhState {
  handle: number;
  pd: number;
  av: AddressVector;
}

export interface SoftCountersState {
  dropped: [string, number][];
  events: [string, number][];
  internalErrors: number;
  packetsSent: number;
  packetsReceived: number;
}

/** Counters of a state that carries none (a new shard's objects, one QP on its way). */
export function emptyCounters(): SoftCountersState {
  return { dropped: [], events: [], internalErrors: 0, packetsSent: 0, packetsReceived: 0 };
}

/** The responder's state with its references as numbers: the RDMA WRITE's MR by its key. */
export interface SavedResponder {
  psn: number;
  msn: number;
  nakSent: boolean;
  lastOpcode: number;
  recv: RecvWqe | null;
  recvOffset: number;
  /** `rkey` null: the MR the WRITE targets was deregistered mid-message (its writes fail). */
  write: { rkey: number | null; va: bigint; remaining: number; lenBytes: number } | null;
  resources: ResponderResource[];
  ackPending: boolean;
  ackPsn: number;
  /** A request held for a PSN gap: its bytes (BTH through ICRC) and where it came from. */
  held: { packet: Uint8Array; fromIp: string } | null;
  nakDue: boolean;
}

/** A suspended QP (R6; TransportQp's suspend fields): where resume returns, policy, ACKs seen. */
export interface SavedSuspension {
  resumeState: QpState;
  /** Arriving requests are dropped (true) or answered with an RNR NAK (false). */
  drop: boolean;
  /** The highest PSN the peer acknowledged while suspended, or -1. */
  ackPsn: number;
}

export interface SoftQpState {
  qpn: number;
  type: QpType;
  pd: number;
  sendCq: number;
  recvCq: number;
  /** SRQ handle, or 0. */
  srq: number;
  cap: QpCapabilities;
  sigAll: boolean;
  state: QpState;
  /** Present exactly when `state` is SUSPENDED. */
  suspension: SavedSuspension | null;
  /** Every attribute (qpState and curQpState repeat `state`). */
  attrs: QpAttributes;
  req: RequesterState;
  comp: CompleterState;
  resp: SavedResponder;
  /** Send WQEs in order: outstanding, unacknowledged and not yet started alike. */
  sq: SendWqe[];
  rq: RecvWqe[];
}

export interface SoftRoceState {
  /** GID 0: the link's address, which moves with the VM (R7). */
  localIp: string;
  portMtu: PathMtu;
  allocators: SoftAllocatorsState;
  /** Every GID, index 0 included. */
  gids: { index: number; ip: string }[];
  pds: number[];
  mrs: SoftMrState[];
  cqs: SoftCqState[];
  srqs: SoftSrqState[];
  ahs: SoftAhState[];
  qps: SoftQpState[];
  counters: SoftCountersState;
}
