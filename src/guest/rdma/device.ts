// The guest verbs library over a virtio-rdma device (docs/device-spec.md): opening the device
// (§13.1: reset, feature negotiation, config space, control and event queues, DRIVER_OK), and
// every control command as a typed call. Objects that own virtqueues set them up when created
// (§5.3 way 2, VIRTIO_F_RING_RESET) and give them back when destroyed. Tests, fuzzers, benchmarks
// and the demo drive the device through this library exactly as a guest would.
import {
  ADVISE_MAX_SGE, Cmd, EVENT_BYTES, PhysMrFlag, RdmaFeature, SEND_WQE_HEADER_BYTES, SGE_BYTES,
  RECV_WQE_HEADER_BYTES, VIRTIO_F_RING_RESET, featureBit,
} from '../../device/abi.js';
import { ipv4ToGid, setU64 } from '../../device/bytes.js';
import { CONFIG_BYTES, type DeviceConfig, decodeConfig } from '../../device/config.js';
import { type AhAttr, type QpAttr, type QpCap, readQpAttr, readQpCap, writeAhAttr, writeQpAttr, writeQpCap, writeSge } from '../../device/structs.js';
import type { DriverTransport } from '../../device/driver-transport.js';
import { Arena, type ArenaState } from '../../memory/arena.js';
import { MemoryError } from '../../memory/errors.js';
import { gpa } from '../../memory/gpa.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1 } from '../../virtio/queue.js';
import { DeviceStatus } from '../../virtio/status.js';
import { ControlChannel } from './control.js';
import { GuestError, GuestErrorCode } from './errors.js';
import { GuestCq, type GuestCqState, GuestQp, type GuestQpState, GuestSrq, type GuestSrqState, type QpOptions } from './objects.js';
import { CqeRing, type CqeRingState, type QueueHost, WqeRing, badState } from './queues.js';
import { type GuestRing, type GuestRingState, createGuestRing, restoreGuestRing, ringSizeFor } from './ring.js';
import type { Sge } from './wqe.js';
import { array, int, record, u64 } from '../../util/plain.js';

export interface OpenOptions {
  /** Features the driver would like (intersected with the offer); default: everything offered. */
  features?: bigint;
  /** Negotiate VIRTIO_F_RING_PACKED if the device offers it. */
  packed?: boolean;
  controlQueueSize?: number;
  eventQueueSize?: number;
  /** How long a command may take, in ms (a device in another thread). */
  timeoutMs?: number;
}

export interface PortAttributes {
  gidTblLen: number;
  maxMsgSz: number;
  state: number;
  maxMtu: number;
  activeMtu: number;
  physState: number;
  portCapFlags: number;
  pkeyTblLen: number;
  linkLayer: number;
}

/** Physical MR registration (REG_PHYS_MR, and REREG_PHYS_MR's translation). */
export interface PhysMrSpec {
  iova: number;
  length: number;
  pageShift: number;
  /** Where `iova` lies in the first page; default iova mod page size. */
  offset?: number;
  pages: readonly number[];
  /** Put the page list in guest memory (INDIRECT) instead of the command. */
  indirect?: boolean;
  invalidatable?: boolean;
}

export interface MrHandle {
  mrn: number;
  lkey: number;
  rkey: number;
}

/** An address vector for CREATE_AH / MODIFY_QP from an IPv4 destination. */
export function ahAttr(dgidIp: string, sgidIndex = 0, extra: Partial<AhAttr> = {}): AhAttr {
  return {
    dgid: ipv4ToGid(dgidIp), flowLabel: 0, sgidIndex, hopLimit: 0, trafficClass: 0, dmac: new Uint8Array(6), sl: 0, portNum: 1,
    staticRate: 0, ahFlags: 0, ...extra,
  };
}

const EMPTY_CAP: QpCap = { maxSendWr: 0, maxRecvWr: 0, maxSendSge: 0, maxRecvSge: 0, maxInlineData: 0 };

/** A qp_attr with every field zero, then `fields`. */
export function qpAttr(fields: Partial<QpAttr> = {}): QpAttr {
  return {
    qpState: 0, curQpState: 0, pathMtu: 0, maxRdAtomic: 0, maxDestRdAtomic: 0, minRnrTimer: 0, timeout: 0, retryCnt: 0, rnrRetry: 0,
    sqDraining: 0, pkeyIndex: 0, portNum: 0, enSqdAsyncNotify: 0, qkey: 0, rqPsn: 0, sqPsn: 0, destQpNum: 0, qpAccessFlags: 0, rateLimit: 0,
    cap: EMPTY_CAP, ahAttr: { ...ahAttr('0.0.0.0'), portNum: 0 }, ...fields,
  };
}

/**
 * Plain data: everything the guest driver library holds outside the device — what a real guest
 * keeps in its own RAM and vCPU registers (ring shadows, free lists, tokens, the allocator of its
 * driver area, the objects it created). Migration carries it beside the device state.
 */
export interface RdmaGuestState {
  kind: typeof GUEST_STATE_KIND;
  version: typeof GUEST_STATE_VERSION;
  /** Negotiated features, in decimal. */
  features: string;
  timeoutMs: number;
  alloc: ArenaState;
  controlRing: GuestRingState;
  controlNextToken: number;
  events: CqeRingState | null;
  cqs: GuestCqState[];
  qps: GuestQpState[];
  srqs: GuestSrqState[];
}

export const GUEST_STATE_KIND = 'vrdma-guest-driver';
export const GUEST_STATE_VERSION = 1;

export class RdmaGuest implements QueueHost {
  readonly control: ControlChannel;
  private events: CqeRing | null = null;
  /** The objects this driver created and has not destroyed, by handle. */
  readonly cqs = new Map<number, GuestCq>();
  readonly qps = new Map<number, GuestQp>();
  readonly srqs = new Map<number, GuestSrq>();

  private constructor(
    readonly transport: DriverTransport,
    readonly guest: GuestMemory,
    readonly alloc: Arena,
    readonly features: bigint,
    readonly config: DeviceConfig,
    /** The control queue's ring (tests that break rings reach it here). */
    readonly controlRing: GuestRing,
    private readonly timeoutMs: number,
  ) {
    this.control = new ControlChannel(transport, guest, alloc, controlRing, timeoutMs);
  }

  /** §13.1: initialize the device and set DRIVER_OK. */
  static open(transport: DriverTransport, guest: GuestMemory, alloc: Arena, options: OpenOptions = {}): RdmaGuest {
    transport.writeStatus(0);
    transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    const offered = transport.deviceFeatures;
    const needed = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_RESET);
    if ((offered & needed) !== needed) throw new GuestError(GuestErrorCode.Negotiation, 'the device lacks VERSION_1 or RING_RESET');
    // Packed rings only when asked for (split is the common default of virtio drivers).
    const packed = options.packed === true ? featureBit(VIRTIO_F_RING_PACKED) : 0n;
    const wanted = ((options.features ?? offered) & offered & ~featureBit(VIRTIO_F_RING_PACKED)) | (packed & offered);
    const features = wanted | needed;
    transport.setDriverFeatures(features);
    const st = transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
    if ((st & DeviceStatus.FEATURES_OK) === 0) throw new GuestError(GuestErrorCode.Negotiation, 'FEATURES_OK did not stick');
    const config = decodeConfig(transport.readConfig(0, CONFIG_BYTES));
    const size = options.controlQueueSize ?? 16;
    const format = (features & featureBit(VIRTIO_F_RING_PACKED)) !== 0n ? 'packed' : 'split';
    const controlRing = createGuestRing(format, guest, alloc, {
      size, eventIdx: (features & featureBit(VIRTIO_F_EVENT_IDX)) !== 0n, indirectDesc: (features & featureBit(VIRTIO_F_INDIRECT_DESC)) !== 0n,
    });
    transport.configureQueue(0, controlRing.config);
    transport.enableQueue(0);
    const dev = new RdmaGuest(transport, guest, alloc, features, config, controlRing, options.timeoutMs ?? 5000);
    const evq = transport.map.event;
    if (dev.has(RdmaFeature.EVENTQ) && evq >= 0) {
      const ring = dev.setupQueue(evq, options.eventQueueSize ?? 16);
      dev.events = new CqeRing(dev, evq, ring, ring.size, EVENT_BYTES);
    }
    transport.writeStatus(transport.status.status | DeviceStatus.DRIVER_OK);
    // Event buffers were offered before DRIVER_OK; tell the device they are there.
    if (dev.events !== null) transport.kick(transport.map.event);
    return dev;
  }

  /**
   * The driver's state, for migration: take it while the guest is stopped (no command in flight;
   * GuestError BUSY otherwise), in the same turn as the device's state and the last RAM pages.
   */
  saveState(): RdmaGuestState {
    if (this.control.busy) throw new GuestError(GuestErrorCode.Busy, 'a control command is in flight; stop the guest between commands');
    return {
      kind: GUEST_STATE_KIND,
      version: GUEST_STATE_VERSION,
      features: this.features.toString(),
      timeoutMs: this.timeoutMs,
      alloc: this.alloc.saveState(),
      controlRing: this.controlRing.saveState(),
      controlNextToken: this.control.nextToken,
      events: this.events?.saveState() ?? null,
      cqs: [...this.cqs.values()].map((cq) => cq.saveState()),
      qps: [...this.qps.values()].map((qp) => qp.saveState()),
      srqs: [...this.srqs.values()].map((srq) => srq.saveState()),
    };
  }

  /**
   * The driver in a saved state, over a device restored from the same instant (its transport
   * already has the queues and DRIVER_OK) and guest RAM already copied. Nothing is written to
   * guest memory or the device. GuestError BAD_STATE if the state is malformed or does not fit.
   */
  static restore(transport: DriverTransport, guest: GuestMemory, state: unknown): RdmaGuest {
    const s = record(state, 'guest driver state', badState);
    if (s.kind !== GUEST_STATE_KIND) badState(`not a guest driver state (kind ${String(s.kind)})`);
    if (s.version !== GUEST_STATE_VERSION) badState(`guest driver state version ${String(s.version)}, this library reads ${GUEST_STATE_VERSION}`);
    const features = u64(s.features, 'features', badState);
    if ((features & ~transport.deviceFeatures) !== 0n) badState('the saved features are not all offered by this device');
    let alloc: Arena;
    try {
      alloc = Arena.fromState(s.alloc);
    } catch (err) {
      if (err instanceof MemoryError) badState(err.message);
      throw err;
    }
    let controlRing: GuestRing;
    try {
      controlRing = restoreGuestRing(guest, alloc, s.controlRing);
    } catch (err) {
      if (err instanceof RangeError || err instanceof MemoryError) badState(`control ring: ${err.message}`);
      throw err;
    }
    const config = decodeConfig(transport.readConfig(0, CONFIG_BYTES));
    const dev = new RdmaGuest(transport, guest, alloc, features, config, controlRing, int(s.timeoutMs, 1, 2 ** 31 - 1, 'timeoutMs', badState));
    dev.control.nextToken = int(s.controlNextToken, 0, Number.MAX_SAFE_INTEGER, 'controlNextToken', badState);
    if (s.events !== null) dev.events = CqeRing.fromState(dev, s.events, 'event queue');
    const once = <T>(map: Map<number, T>, key: number, value: T, what: string): void => {
      if (map.has(key)) badState(`${what} ${key} appears twice`);
      map.set(key, value);
    };
    for (const cq of array(s.cqs, 'cqs', badState).map((c) => GuestCq.fromState(dev, c))) once(dev.cqs, cq.cqn, cq, 'CQ');
    for (const srq of array(s.srqs, 'srqs', badState).map((c) => GuestSrq.fromState(dev, c))) once(dev.srqs, srq.srqn, srq, 'SRQ');
    for (const qp of array(s.qps, 'qps', badState).map((c) => GuestQp.fromState(dev, c))) once(dev.qps, qp.qpn, qp, 'QP');
    return dev;
  }

  has(bit: number): boolean {
    return (this.features & featureBit(bit)) !== 0n;
  }

  /** A ring for `vq` of at least `entries` slots, configured and enabled (§5.3, way 2). */
  setupQueue(vq: number, entries: number): GuestRing {
    if (this.transport.queueEnabled(vq)) this.transport.resetQueue(vq);
    const ring = createGuestRing(this.has(VIRTIO_F_RING_PACKED) ? 'packed' : 'split', this.guest, this.alloc, {
      size: ringSizeFor(entries, this.transport.maxQueueSize(vq)),
      eventIdx: this.has(VIRTIO_F_EVENT_IDX),
      indirectDesc: this.has(VIRTIO_F_INDIRECT_DESC),
    });
    this.transport.configureQueue(vq, ring.config);
    this.transport.enableQueue(vq);
    return ring;
  }

  /** Give a queue back to the disabled state and free its ring. */
  releaseQueue(vq: number, ring: GuestRing | null): void {
    if (this.transport.queueEnabled(vq)) this.transport.resetQueue(vq);
    ring?.dispose();
  }

  /** Asynchronous events the device wrote (§12), oldest first. */
  pollEvents(): { type: number; handle: number }[] {
    if (this.events === null) return [];
    return this.events
      .pollRaw()
      .filter((u) => u.len >= EVENT_BYTES)
      .map((u) => {
        const v = new DataView(u.bytes.buffer);
        return { type: v.getUint32(0, true), handle: v.getUint32(4, true) };
      });
  }

  // ---- commands ----------------------------------------------------------------------------

  async queryDevice(): Promise<DataView> {
    return this.control.command(Cmd.QueryDevice, new Uint8Array(0), 128);
  }

  async queryPort(): Promise<PortAttributes> {
    const r = await this.control.command(Cmd.QueryPort, new Uint8Array(0), 32);
    return {
      gidTblLen: r.getUint32(0, true), maxMsgSz: r.getUint32(4, true), state: r.getUint8(8), maxMtu: r.getUint8(9), activeMtu: r.getUint8(10),
      physState: r.getUint8(11), portCapFlags: r.getUint32(12, true), pkeyTblLen: r.getUint16(16, true), linkLayer: r.getUint8(20),
    };
  }

  async createPd(): Promise<number> {
    return (await this.control.command(Cmd.CreatePd, new Uint8Array(0), 4)).getUint32(0, true);
  }

  async destroyPd(pdn: number): Promise<void> {
    await this.control.command(Cmd.DestroyPd, u32s(pdn), 0);
  }

  async createCq(cqe: number, options: { buffers?: number; bufferBytes?: number } = {}): Promise<GuestCq> {
    const r = await this.control.command(Cmd.CreateCq, u32s(cqe, 0), 16);
    const cqn = r.getUint32(0, true);
    const vq = r.getUint32(4, true);
    const buffers = options.buffers ?? cqe;
    const ring = this.setupQueue(vq, Math.max(1, buffers));
    const cq = new GuestCq(this, cqn, vq, r.getUint32(8, true), new CqeRing(this, vq, ring, Math.min(buffers, ring.size), options.bufferBytes));
    this.cqs.set(cqn, cq);
    return cq;
  }

  /** DESTROY_CQ without touching the guest-side object (GuestCq.destroy does both). */
  async destroyCqCommand(cqn: number): Promise<void> {
    await this.control.command(Cmd.DestroyCq, u32s(cqn), 0);
  }

  /** REQ_NOTIFY_CQ: returns cqes_written (§7.17). */
  async reqNotifyCq(cqn: number, flags: number): Promise<number> {
    return (await this.control.command(Cmd.ReqNotifyCq, u32s(cqn, flags), 4)).getUint32(0, true);
  }

  async getDmaMr(pdn: number, access: number): Promise<MrHandle> {
    return mrHandle(await this.control.command(Cmd.GetDmaMr, u32s(pdn, access), 12));
  }

  async regUserMr(pdn: number, access: number, virtAddr: number, length: number, pages: readonly number[]): Promise<MrHandle> {
    const body = new Uint8Array(32 + 8 * pages.length);
    const v = new DataView(body.buffer);
    v.setUint32(0, pdn, true);
    v.setUint32(4, access, true);
    setU64(v, 8, virtAddr);
    setU64(v, 16, length);
    v.setUint32(24, pages.length, true);
    pages.forEach((p, i) => setU64(v, 32 + 8 * i, p));
    return mrHandle(await this.control.command(Cmd.RegUserMr, body, 12));
  }

  async regPhysMr(pdn: number, access: number, spec: PhysMrSpec): Promise<MrHandle> {
    const { body, release } = this.physBody(48, 8, spec);
    try {
      const v = new DataView(body.buffer);
      v.setUint32(0, pdn, true);
      v.setUint32(4, access, true);
      return mrHandle(await this.control.command(Cmd.RegPhysMr, body, 16));
    } finally {
      release();
    }
  }

  async reregPhysMr(mrn: number, change: { pdn?: number; access?: number; translation?: PhysMrSpec }): Promise<{ lkey: number; rkey: number }> {
    let flags = 0;
    if (change.translation !== undefined) flags |= 1;
    if (change.pdn !== undefined) flags |= 2;
    if (change.access !== undefined) flags |= 4;
    const built = change.translation !== undefined ? this.physBody(56, 16, change.translation) : { body: new Uint8Array(56), release: () => {} };
    try {
      const v = new DataView(built.body.buffer);
      v.setUint32(0, mrn, true);
      v.setUint32(4, flags, true);
      v.setUint32(8, change.pdn ?? 0, true);
      v.setUint32(12, change.access ?? 0, true);
      const r = await this.control.command(Cmd.ReregPhysMr, built.body, 8);
      return { lkey: r.getUint32(0, true), rkey: r.getUint32(4, true) };
    } finally {
      built.release();
    }
  }

  /** Build a REG_PHYS_MR-style body: fixed part of `fixed` bytes, translation fields at `b`. */
  private physBody(fixed: number, b: number, spec: PhysMrSpec): { body: Uint8Array; release: () => void } {
    const pageBytes = 2 ** spec.pageShift;
    const indirect = spec.indirect ?? false;
    const body = new Uint8Array(fixed + (indirect ? 0 : 8 * spec.pages.length));
    const v = new DataView(body.buffer);
    setU64(v, b, spec.iova);
    setU64(v, b + 8, spec.length);
    v.setUint32(b + 16, spec.pageShift, true);
    v.setUint32(b + 20, spec.offset ?? spec.iova % pageBytes, true);
    v.setUint32(b + 24, spec.pages.length, true);
    v.setUint32(b + 28, (indirect ? PhysMrFlag.INDIRECT : 0) | (spec.invalidatable ? PhysMrFlag.INVALIDATABLE : 0), true);
    let release = () => {};
    if (indirect) {
      const list = this.alloc.alloc(Math.max(8, 8 * spec.pages.length), 8);
      const lv = new DataView(new ArrayBuffer(8 * spec.pages.length));
      spec.pages.forEach((p, i) => setU64(lv, 8 * i, p));
      this.guest.write(gpa(list), new Uint8Array(lv.buffer));
      setU64(v, b + 32, list);
      release = () => this.alloc.release(list);
    } else {
      spec.pages.forEach((p, i) => setU64(v, fixed + 8 * i, p));
    }
    return { body, release };
  }

  async deregMr(mrn: number): Promise<void> {
    await this.control.command(Cmd.DeregMr, u32s(mrn), 0);
  }

  async adviseMr(advice: number, flags: number, sges: readonly Sge[]): Promise<void> {
    if (sges.length > ADVISE_MAX_SGE) throw new GuestError(GuestErrorCode.InvalidArgument, `at most ${ADVISE_MAX_SGE} SGEs`);
    const body = new Uint8Array(16 + SGE_BYTES * sges.length);
    const v = new DataView(body.buffer);
    v.setUint32(0, advice, true);
    v.setUint32(4, flags, true);
    v.setUint32(8, sges.length, true);
    sges.forEach((s, i) => writeSge(v, 16 + SGE_BYTES * i, s));
    await this.control.command(Cmd.AdviseMr, body, 0);
  }

  async createQp(options: QpOptions): Promise<GuestQp> {
    const body = new Uint8Array(56);
    const v = new DataView(body.buffer);
    v.setUint32(0, options.pd, true);
    v.setUint8(4, options.type);
    v.setUint8(5, options.sigAll ? 1 : 0);
    v.setUint32(8, options.sendCq, true);
    v.setUint32(12, options.recvCq, true);
    writeQpCap(v, 16, options.cap);
    v.setUint32(40, options.srq ?? 0, true);
    v.setUint32(44, options.srq !== undefined ? 1 : 0, true);
    const r = await this.control.command(Cmd.CreateQp, body, 32);
    const qpn = r.getUint32(0, true);
    const index = r.getUint32(4, true);
    const { reserved: _reserved, ...cap } = readQpCap(r, 8);
    const map = this.transport.map;
    const sendSlot = SEND_WQE_HEADER_BYTES + Math.max(SGE_BYTES * cap.maxSendSge, cap.maxInlineData);
    const recvSlot = RECV_WQE_HEADER_BYTES + SGE_BYTES * Math.max(cap.maxRecvSge, 1);
    const sq = this.setupQueue(map.sq(index), Math.max(1, cap.maxSendWr));
    const rq = this.setupQueue(map.rq(index), Math.max(1, cap.maxRecvWr));
    const qp = new GuestQp(this, qpn, index, options, cap, new WqeRing(this, map.sq(index), sq, sendSlot), new WqeRing(this, map.rq(index), rq, recvSlot));
    this.qps.set(qpn, qp);
    return qp;
  }

  async modifyQp(qpn: number, mask: number, attr: Partial<QpAttr>): Promise<void> {
    const body = new Uint8Array(128);
    const v = new DataView(body.buffer);
    v.setUint32(0, qpn, true);
    v.setUint32(4, mask, true);
    writeQpAttr(v, 8, qpAttr(attr));
    await this.control.command(Cmd.ModifyQp, body, 0);
  }

  async queryQp(qpn: number, mask = 0): Promise<QpAttr> {
    const r = await this.control.command(Cmd.QueryQp, u32s(qpn, mask), 120);
    return readQpAttr(r, 0);
  }

  async destroyQpCommand(qpn: number): Promise<void> {
    await this.control.command(Cmd.DestroyQp, u32s(qpn), 0);
  }

  async createAh(pdn: number, attr: AhAttr): Promise<number> {
    const body = new Uint8Array(48);
    const v = new DataView(body.buffer);
    v.setUint32(0, pdn, true);
    writeAhAttr(v, 8, attr);
    return (await this.control.command(Cmd.CreateAh, body, 4)).getUint32(0, true);
  }

  async destroyAh(pdn: number, ah: number): Promise<void> {
    await this.control.command(Cmd.DestroyAh, u32s(pdn, ah), 0);
  }

  async addGid(index: number, ip: string): Promise<void> {
    const body = new Uint8Array(24);
    new DataView(body.buffer).setUint16(0, index, true);
    body.set(ipv4ToGid(ip), 8);
    await this.control.command(Cmd.AddGid, body, 0);
  }

  async delGid(index: number): Promise<void> {
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint16(0, index, true);
    await this.control.command(Cmd.DelGid, body, 0);
  }

  async createSrq(pdn: number, maxWr: number, maxSge: number, limit = 0): Promise<GuestSrq> {
    const r = await this.control.command(Cmd.CreateSrq, u32s(pdn, maxWr, maxSge, limit), 16);
    const srqn = r.getUint32(0, true);
    const index = r.getUint32(4, true);
    const granted = { maxWr: r.getUint32(8, true), maxSge: r.getUint32(12, true) };
    const vq = this.transport.map.srq(index);
    const ring = this.setupQueue(vq, granted.maxWr);
    const srq = new GuestSrq(this, srqn, index, granted.maxWr, granted.maxSge, new WqeRing(this, vq, ring, 16 + 16 * granted.maxSge));
    this.srqs.set(srqn, srq);
    return srq;
  }

  async modifySrq(srqn: number, mask: number, maxWr: number, limit: number): Promise<void> {
    await this.control.command(Cmd.ModifySrq, u32s(srqn, mask, maxWr, limit), 0);
  }

  async querySrq(srqn: number): Promise<{ maxWr: number; maxSge: number; limit: number }> {
    const r = await this.control.command(Cmd.QuerySrq, u32s(srqn), 16);
    return { maxWr: r.getUint32(0, true), maxSge: r.getUint32(4, true), limit: r.getUint32(8, true) };
  }

  async destroySrqCommand(srqn: number): Promise<void> {
    await this.control.command(Cmd.DestroySrq, u32s(srqn), 0);
  }

  /** Reset the device (status 0): every object is gone (§13.3). */
  reset(): void {
    this.transport.writeStatus(0);
    this.cqs.clear();
    this.qps.clear();
    this.srqs.clear();
  }
}


function u32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true));
  return out;
}

function mrHandle(r: DataView): MrHandle {
  return { mrn: r.getUint32(0, true), lkey: r.getUint32(4, true), rkey: r.getUint32(8, true) };
}
