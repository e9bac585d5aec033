// A virtio-rdma device's state as plain data (R9): the transport the driver negotiated, every
// virtqueue's configuration and ring state, the device's own objects (its handles and indices,
// the CQs' CQE backlogs and arming, the QP/SRQ/CQ <-> virtqueue mapping, each work queue's chains
// popped and not yet answered), the event queue, and the provider's state nested whole. Untrusted
// until check.ts has compared it with the destination device.
import type { EventType } from '../abi.js';
import type { MrObj, QpKind } from '../core.js';
import type { QueueConfig } from '../queue-factory.js';
import type { QpCap } from '../structs.js';
import type { QpState, QpType } from '../../nic/qp-state.js';
import type { QueueState } from '../../virtio/queue-state.js';

export interface SavedSegment {
  gpa: number;
  len: number;
}

/** A descriptor chain the device popped: its ring id and descriptors, its buffers by GPA. */
export interface SavedChain {
  id: number;
  descCount: number;
  readable: SavedSegment[];
  writable: SavedSegment[];
  /** Popped from the queue now enabled on its virtqueue (false: from one reset since). */
  current: boolean;
}

/** A work request the device holds (WqEntry, with its chain). */
export interface SavedEntry {
  seq: number;
  chain: SavedChain;
  wrId: bigint;
  signaled: boolean;
  /** The 64-byte CQE once it completed, or null while the provider has it. */
  cqe: Uint8Array | null;
  wqeError: boolean;
  cq: number;
  solicited: boolean;
  lkeys: number[];
}

export interface SavedWorkQueue {
  halted: boolean;
  /** Chains popped and not yet decoded. */
  pending: SavedChain[];
  /** Work requests in posting order. */
  entries: SavedEntry[];
}

export interface SavedQueue {
  vq: number;
  config: QueueConfig;
  /** The ring's state when the queue is enabled, else null. */
  state: QueueState | null;
  kick: number;
  call: number;
}

export interface SavedCq {
  index: number;
  depth: number;
  verbsCq: number;
  armed: number;
  error: boolean;
  cqesWritten: number;
  notifyDue: boolean;
  backlog: { bytes: Uint8Array; solicitedOrError: boolean }[];
}

export interface SavedQp {
  qpn: number;
  index: number;
  kind: QpKind;
  verbsType: QpType;
  pd: number;
  sendCq: number;
  recvCq: number;
  srq: number;
  cap: QpCap;
  sigAll: boolean;
  state: QpState;
  sgidIndex: number;
  deviceSqe: boolean;
  drainNotify: boolean;
  qkey: number;
  flushVendor: number;
  sq: SavedWorkQueue;
  rq: SavedWorkQueue;
}

export interface SavedSrq {
  index: number;
  verbsSrq: number;
  pd: number;
  maxWr: number;
  maxSge: number;
  limit: number;
  error: boolean;
  wq: SavedWorkQueue;
}

export interface DeviceStateData {
  deviceFeatures: bigint;
  driverFeatures: bigint;
  status: number;
  resetReason: string | null;
  /** The config space the driver read (§4): the destination must present the same bytes. */
  config: Uint8Array;
  numQueues: number;
  queues: SavedQueue[];
  allocators: { pd: number; mr: number; ah: number; seq: number };
  gids: { index: number; ip: string }[];
  pds: { handle: number; verbsPd: number }[];
  mrs: MrObj[];
  ahs: { handle: number; pd: number; verbsAh: number; sgidIndex: number }[];
  cqs: SavedCq[];
  qps: SavedQp[];
  srqs: SavedSrq[];
  events: { enabled: boolean; written: number; pending: { type: EventType; handle: number }[] };
  /** The provider's own state buffer (a Provider-kind state), nested whole. */
  provider: Uint8Array;
}
