// The device's object tables and the state every part of it shares: the guest-visible handles
// and indices (docs/device-spec.md §5.2, §7) and the provider objects behind them. Plain fields,
// no globals: one DeviceCore per device, so a worker pool can run many devices side by side.
import { IdAllocator } from '../nic/ids.js';
import type { QpState, QpType } from '../nic/qp-state.js';
import type { PhysicalRegistration, Verbs } from '../nic/verbs.js';
import { RdmaStatus, featureBit } from './abi.js';
import type { DeviceConfig, HostPolicy } from './config.js';
import type { DeviceCq } from './cq.js';
import { DeviceError, badHandle } from './errors.js';
import type { EventQueue } from './eventq.js';
import type { QpCap } from './structs.js';
import type { RdmaTransport } from './transport.js';
import type { WorkQueue, WqEntry } from './work-queue.js';

export type QpKind = 'rc' | 'ud' | 'gsi';

export interface PdObj {
  readonly handle: number;
  readonly verbsPd: number;
}

export interface MrObj {
  readonly handle: number;
  pd: number;
  readonly lkey: number;
  readonly rkey: number;
  readonly kind: 'dma' | 'phys';
  access: number;
  invalidatable: boolean;
  /** What the provider maps (kept so a rereg can change one aspect and keep the rest). */
  reg: PhysicalRegistration | 'all-memory';
}

export interface AhObj {
  readonly handle: number;
  readonly pd: number;
  readonly verbsAh: number;
  readonly sgidIndex: number;
}

export interface QpObj {
  readonly qpn: number;
  readonly index: number;
  readonly kind: QpKind;
  readonly verbsType: QpType;
  readonly pd: number;
  readonly sendCq: number;
  readonly recvCq: number;
  /** SRQ handle, or 0. */
  readonly srq: number;
  readonly cap: QpCap;
  readonly sigAll: boolean;
  /** The state as the guest sees it (§9.2). */
  state: QpState;
  /** GID index of the primary path, or -1 (DEL_GID refuses a GID in use). */
  sgidIndex: number;
  /**
   * The device itself stopped a UD send queue (a malformed WQE, §10.3): the guest sees SQE while
   * the provider QP is still RTS, so SQE -> RTS is an RTS -> RTS at the provider.
   */
  deviceSqe: boolean;
  /** en_sqd_async_notify was given with the move to SQD: raise SQ_DRAINED once drained. */
  drainNotify: boolean;
  /** The QP's Q_Key (UD), for WQEs that ask for it (§10.2, remote_qkey bit 31). */
  qkey: number;
  /** vendor_err for flush completions: 12, or 13 once its CQ overran (§11.5). */
  flushVendor: number;
  readonly sq: WorkQueue;
  readonly rq: WorkQueue;
}

export interface SrqObj {
  readonly handle: number;
  readonly index: number;
  readonly verbsSrq: number;
  readonly pd: number;
  readonly maxWr: number;
  readonly maxSge: number;
  limit: number;
  /** A malformed WQE put the SRQ in error: nothing more is read from it. */
  error: boolean;
  readonly wq: WorkQueue;
}

/** Where an in-flight work request's completion goes back to. */
export interface InFlight {
  readonly entry: WqEntry;
  readonly wq: WorkQueue;
  readonly qp: QpObj | null;
  readonly srq: SrqObj | null;
}

/** Lowest free slot of a table (§5.2: the device assigns the lowest free index), or -1. */
export function lowestFree<T>(table: readonly (T | null)[]): number {
  return table.indexOf(null);
}

export class DeviceCore {
  readonly pds = new Map<number, PdObj>();
  pdIds: IdAllocator;
  readonly mrs = new Map<number, MrObj>();
  mrIds: IdAllocator;
  readonly ahs = new Map<number, AhObj>();
  ahIds: IdAllocator;
  readonly cqs: (DeviceCq | null)[];
  readonly cqByVerbs = new Map<number, DeviceCq>();
  readonly qps = new Map<number, QpObj>();
  readonly qpByIndex: (QpObj | null)[];
  readonly srqs: (SrqObj | null)[];
  /** GID table of port 1; index 0 is the device-owned default GID. */
  readonly gids: (string | null)[];
  readonly inFlight = new Map<number, InFlight>();
  /**
   * A command added used entries to queue `vq` (a control answer, CQ buffers given back): they are
   * published with the pass's other used entries (Datapath.publish), not flushed on the spot —
   * with deferred publication (RdmaDevice option deferPublish), only after the caller committed.
   */
  publishLater: (vq: number) => void = () => {};
  private nextSeq = 1;

  constructor(
    readonly verbs: Verbs,
    readonly transport: RdmaTransport,
    readonly config: DeviceConfig,
    readonly policy: HostPolicy,
    readonly events: EventQueue,
  ) {
    this.pdIds = new IdAllocator('PD', 1, Math.max(1, config.maxPd));
    this.mrIds = new IdAllocator('MR', 1, Math.max(1, config.maxMr));
    this.ahIds = new IdAllocator('AH', 1, Math.max(1, config.maxAh));
    this.cqs = new Array<DeviceCq | null>(config.maxCq).fill(null);
    this.qpByIndex = new Array<QpObj | null>(config.maxQp).fill(null);
    this.srqs = new Array<SrqObj | null>(config.maxSrq).fill(null);
    this.gids = new Array<string | null>(config.gidTblLen).fill(null);
    this.gids[0] = config.defaultGid;
  }

  /** Forget every object (reset, §13.3); the provider objects were destroyed by the caller. */
  clear(): void {
    this.pds.clear();
    this.mrs.clear();
    this.ahs.clear();
    this.cqs.fill(null);
    this.cqByVerbs.clear();
    this.qps.clear();
    this.qpByIndex.fill(null);
    this.srqs.fill(null);
    this.gids.fill(null);
    this.gids[0] = this.config.defaultGid;
    this.inFlight.clear();
    this.pdIds = new IdAllocator('PD', 1, Math.max(1, this.config.maxPd));
    this.mrIds = new IdAllocator('MR', 1, Math.max(1, this.config.maxMr));
    this.ahIds = new IdAllocator('AH', 1, Math.max(1, this.config.maxAh));
    this.nextSeq = 1;
  }

  /** A negotiated device feature (§3.2). */
  has(bit: number): boolean {
    return (this.transport.status.features & featureBit(bit)) !== 0n;
  }

  seq(): number {
    return this.nextSeq++;
  }

  /** The next sequence number (the wrId the provider will see next), for migration. */
  get seqCursor(): number {
    return this.nextSeq;
  }

  set seqCursor(next: number) {
    if (!Number.isSafeInteger(next) || next < 1) throw new RangeError(`sequence cursor ${next}`);
    this.nextSeq = next;
  }

  pd(handle: number): PdObj {
    const pd = this.pds.get(handle);
    if (pd === undefined) throw badHandle(`no PD ${handle}`);
    return pd;
  }

  mr(handle: number): MrObj {
    const mr = this.mrs.get(handle);
    if (mr === undefined) throw badHandle(`no MR ${handle}`);
    return mr;
  }

  /** The MR whose lkey or rkey is `key`, or undefined. */
  mrByKey(key: number): MrObj | undefined {
    for (const mr of this.mrs.values()) if (mr.lkey === key || mr.rkey === key) return mr;
    return undefined;
  }

  cq(handle: number): DeviceCq {
    const cq = Number.isInteger(handle) ? this.cqs[handle] : undefined;
    if (cq === undefined || cq === null) throw badHandle(`no CQ ${handle}`);
    return cq;
  }

  qp(qpn: number): QpObj {
    const qp = this.qps.get(qpn);
    if (qp === undefined) throw badHandle(`no QP ${qpn}`);
    return qp;
  }

  /** SRQ handles are index + 1, so 0 is never valid (§1). */
  srq(handle: number): SrqObj {
    const srq = handle >= 1 ? this.srqs[handle - 1] : undefined;
    if (srq === undefined || srq === null) throw badHandle(`no SRQ ${handle}`);
    return srq;
  }

  ah(handle: number): AhObj {
    const ah = this.ahs.get(handle);
    if (ah === undefined) throw badHandle(`no AH ${handle}`);
    return ah;
  }

  /** BUSY unless nothing of the PD is alive (§7.6). */
  checkPdUnused(pd: number): void {
    const users: Iterable<{ pd: number }>[] = [this.mrs.values(), this.qps.values(), this.ahs.values(), this.srqs.filter((s) => s !== null) as SrqObj[]];
    for (const list of users) {
      for (const obj of list) if (obj.pd === pd) throw new DeviceError(RdmaStatus.Busy, `PD ${pd} still has objects`);
    }
  }
}
