// RdmaDevice: one virtio-rdma device (docs/device-spec.md) over a verbs provider. It owns the
// transport (what the driver touches), the object tables, the control queue and the data path.
// process() services every queue that was kicked and every provider CQ that has completions,
// synchronously; a device loop (in any thread) calls it when the transport's wake doorbell rings,
// or the device runs inline, processing right after each kick. No state lives outside the object.
import type { DeviceMemory } from '../memory/device-memory.js';
import type { QpState } from '../nic/qp-state.js';
import { QpState as S } from '../nic/qp-state.js';
import type { Verbs } from '../nic/verbs.js';
import { VirtioError } from '../virtio/errors.js';
import type { KernelEngine } from '../virtio/queue.js';
import { RdmaFeature, featureBit } from './abi.js';
import { type DeviceConfig, type HostPolicy, defaultConfig } from './config.js';
import { ControlQueue } from './control.js';
import { DeviceCore } from './core.js';
import { Datapath } from './datapath.js';
import { EventQueue } from './eventq.js';
import { type QueueFactory, ringQueueFactory } from './queue-factory.js';
import { StateError, StateErrorCode } from '../state/index.js';
import { captureDevice } from './state/capture.js';
import { encodeDeviceState } from './state/codec.js';
import { restoreDevice } from './state/rebuild.js';
import { DEFAULT_QUEUE_NUM_MAX, type QueueNumMax, RdmaTransport, transportFeatures } from './transport.js';

export interface RdmaDeviceOptions {
  verbs: Verbs;
  dm: DeviceMemory;
  /** The VM's IPv4 address: GID index 0 (R7). */
  vmIp: string;
  /** Further addresses the host assigned to the VM (ADD_GID accepts only these, §7.16). */
  assignedGids?: readonly string[];
  /** Builds the rings; defaults to split and packed rings over the Wasm kernels. */
  queueFactory?: QueueFactory;
  engine?: KernelEngine;
  /** Device features to withhold (host policy), e.g. to model a provider without atomics. */
  withhold?: readonly number[];
  /** Overrides of the config space defaults (§15). */
  config?: Partial<DeviceConfig>;
  queueNumMax?: QueueNumMax;
  /** Process right after each kick and each provider completion, in the caller's thread. */
  inline?: boolean;
  /**
   * Leave used entries and notifications unpublished at the end of each pass, for the caller to
   * publish() when it chooses: a durable backend commits the device's state first (src/backend).
   */
  deferPublish?: boolean;
}

/** Passes per process() call: bounds one call; what is left stays pending for the next. */
const MAX_PASSES = 16;

/** The device features a provider lets the device offer (§3.2, "Optional capabilities"). */
export function offeredDeviceFeatures(verbs: Verbs, withhold: readonly number[] = []): bigint {
  const caps = verbs.capabilities;
  const bits: number[] = [RdmaFeature.UD, RdmaFeature.ATOMIC, RdmaFeature.EVENTQ];
  if (caps.physicalMr) bits.push(RdmaFeature.PHYS_MR);
  if (caps.allMemoryMr) bits.push(RdmaFeature.ALL_MEMORY);
  if (caps.onDemandPaging && typeof verbs.adviseMr === 'function') bits.push(RdmaFeature.ODP);
  if (verbs.limits.maxSrq > 0 && verbs.limits.maxSrqWr > 0) bits.push(RdmaFeature.SRQ);
  if (verbs.limits.maxInlineBytes > 0) bits.push(RdmaFeature.INLINE);
  return bits.filter((b) => !withhold.includes(b)).reduce((f, b) => f | featureBit(b), 0n);
}

export class RdmaDevice {
  readonly transport: RdmaTransport;
  readonly core: DeviceCore;
  readonly datapath: Datapath;
  readonly control: ControlQueue;
  readonly events: EventQueue;
  private readonly verbsPending = new Set<number>();
  private processing = false;
  private readonly inline: boolean;
  private readonly factory: QueueFactory;
  private readonly deferPublish: boolean;

  constructor(options: RdmaDeviceOptions) {
    const { verbs, dm } = options;
    const factory = options.queueFactory ?? ringQueueFactory(options.engine ?? 'wasm');
    this.factory = factory;
    const deviceFeatures = offeredDeviceFeatures(verbs, options.withhold);
    const config = { ...defaultConfig(verbs, options.vmIp, deviceFeatures), ...options.config };
    const eventq = (deviceFeatures & featureBit(RdmaFeature.EVENTQ)) !== 0n;
    this.transport = new RdmaTransport(dm, config, transportFeatures(factory) | deviceFeatures, factory, options.queueNumMax ?? DEFAULT_QUEUE_NUM_MAX, eventq);
    const policy: HostPolicy = { assignedGids: options.assignedGids ?? [] };
    this.events = new EventQueue(false);
    this.core = new DeviceCore(verbs, this.transport, config, policy, this.events);
    // Every guest write (CQEs, responses, events, used rings, payloads) is marked in dm.dirtyLog.
    this.datapath = new Datapath(this.core, dm);
    this.control = new ControlQueue(this.core, this.datapath, dm.guest.bytes);
    this.inline = options.inline ?? false;
    this.deferPublish = options.deferPublish ?? false;
    this.core.publishLater = (vq) => this.datapath.markUnpublished(vq);
    this.transport.onReset = () => this.reset();
    this.transport.onQueueReset = (vq) => this.queueReset(vq);
    if (this.inline) this.transport.onKick = () => this.runInline();
    verbs.onCompletion((cq) => {
      this.verbsPending.add(cq);
      this.transport.wake.notify();
      if (this.inline) this.runInline();
    });
  }

  get needsReset(): boolean {
    return this.transport.status.needsReset;
  }

  /**
   * Service every kicked queue and every provider CQ with completions. Returns true if work is
   * left (the caller calls again). Never throws for anything the guest did: a broken ring sets
   * NEEDS_RESET on this device and stops it.
   */
  process(): boolean {
    if (this.processing) return false;
    this.processing = true;
    try {
      const status = this.transport.status;
      if (!status.driverOk) {
        this.discardCompletions();
        return false;
      }
      this.events.enabled = this.core.has(RdmaFeature.EVENTQ);
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        const vqs = this.transport.takePending();
        const cqs = [...this.verbsPending];
        this.verbsPending.clear();
        if (vqs.length === 0 && cqs.length === 0) return false;
        for (const vq of vqs) this.serviceQueue(vq);
        for (const cq of cqs) if (!this.datapath.pollProvider(cq)) this.verbsPending.add(cq);
        this.datapath.drainEvents();
        if (!this.deferPublish) this.datapath.publish();
      }
      return true;
    } catch (err) {
      if (!(err instanceof VirtioError)) throw err;
      this.broken(err.message);
      return false;
    } finally {
      this.processing = false;
    }
  }

  /**
   * Publish the used entries and send the notifications the passes since the last call left
   * (with deferPublish; otherwise every pass has done it already).
   */
  publish(): void {
    if (this.processing) throw new StateError(StateErrorCode.Busy, 'the device is inside a pass');
    this.datapath.publish();
  }

  private runInline(): void {
    for (let i = 0; i < MAX_PASSES && this.process(); i++);
  }

  private serviceQueue(vq: number): void {
    const { core, datapath, transport } = this;
    const role = transport.map.role(vq);
    const queue = transport.queue(vq);
    if (role === null || queue === null) return;
    // Whether the device reads this queue now; if so, it asks for kicks again once it is idle.
    let reading = true;
    switch (role.kind) {
      case 'control':
        this.control.service(queue, this.datapath.sink.log);
        break;
      case 'cq': {
        const cq = core.cqs[role.index];
        if (cq !== null) datapath.serviceCq(cq);
        // CQE buffers wait in the ring until a CQE is due: kicks matter only with a backlog.
        reading = cq !== null && cq.backlogLength > 0 && !cq.error;
        break;
      }
      case 'sq':
      case 'rq': {
        const qp = core.qpByIndex[role.index];
        if (qp === null) reading = false;
        else if (role.kind === 'sq') datapath.serviceSq(qp);
        else datapath.serviceRq(qp);
        break;
      }
      case 'srq': {
        const srq = core.srqs[role.index];
        if (srq !== null) datapath.serviceSrq(srq);
        reading = srq !== null && !srq.error;
        break;
      }
      case 'event':
        datapath.drainEvents();
        reading = this.events.pendingCount > 0;
        break;
    }
    // virtio 1.2 2.7.10: going idle, ask for the next kick; buffers that raced in get another pass.
    if (reading && queue.enableNotification()) transport.setPending(vq);
  }

  /** §13.2: stop everything of this device; QPs send nothing more. */
  private broken(reason: string): void {
    this.transport.markNeedsReset(reason);
    const { verbs } = this.core;
    if (!verbs.capabilities.suspendQp) return;
    for (const qp of this.core.qps.values()) {
      if (qp.state === S.Rts || qp.state === S.Sqd || qp.state === S.Sqe) {
        try {
          verbs.suspendQp(qp.qpn, 'drop');
        } catch {
          // Nothing more can be done for it; peers time out.
        }
      }
    }
  }

  /** Keep the provider CQs empty while the device does not run (no objects, or NEEDS_RESET). */
  private discardCompletions(): void {
    for (const cq of this.verbsPending) {
      try {
        for (let i = 0; i < 1024 && this.core.verbs.pollCq(cq, 64).length > 0; i++);
      } catch {
        // The CQ is gone.
      }
    }
    this.verbsPending.clear();
  }

  /** §13.3: destroy every object, in dependency order, without completions. */
  private reset(): void {
    const { core } = this;
    const quietly = (fn: () => void) => {
      try {
        fn();
      } catch {
        // A provider object that is already gone is what reset wants anyway.
      }
    };
    for (const qp of core.qps.values()) quietly(() => core.verbs.destroyQp(qp.qpn));
    for (const srq of core.srqs) if (srq !== null) quietly(() => core.verbs.destroySrq(srq.verbsSrq));
    for (const ah of core.ahs.values()) quietly(() => core.verbs.destroyAh(ah.verbsAh));
    for (const mr of core.mrs.values()) quietly(() => core.verbs.deregMr(mr.lkey));
    for (const cq of core.cqs) if (cq !== null) quietly(() => core.verbs.destroyCq(cq.verbsCq));
    for (const pd of core.pds.values()) quietly(() => core.verbs.deallocPd(pd.verbsPd));
    core.gids.forEach((gid, i) => {
      if (i > 0 && gid !== null) quietly(() => core.verbs.delGid(i));
    });
    core.clear();
    this.events.clear();
    this.datapath.clear();
    this.verbsPending.clear();
  }

  private queueReset(vq: number): void {
    const role = this.transport.map.role(vq);
    const queue = this.transport.queue(vq);
    if (role === null || queue === null) return;
    if (role.kind === 'sq' || role.kind === 'rq') {
      const qp = this.core.qpByIndex[role.index];
      if (qp !== null) this.datapath.queueReset(role.kind === 'sq' ? qp.sq : qp.rq, queue);
    } else if (role.kind === 'srq') {
      const srq = this.core.srqs[role.index];
      if (srq !== null) this.datapath.queueReset(srq.wq, queue);
    }
  }

  /**
   * The host changed the guest's memory map (hotplug or unplug, after `dm.addRegion` /
   * `dm.removeRegion`): re-map every all-memory (DMA) MR so it reaches exactly the memory now
   * present, keeping its keys (R2, §8.3). Physical MRs resolve their pages at each access and
   * need nothing. Call with the device's datapath quiesced, like any region-table change.
   */
  memoryChanged(): void {
    for (const mr of this.core.mrs.values()) {
      if (mr.kind === 'dma') this.core.verbs.reregisterPhysical(mr.lkey, 'all-memory');
    }
  }

  /**
   * R9: the whole device in one buffer (docs/state-format.md, a Device-kind state): transport,
   * virtqueues, the device's objects and the chains it holds, events, and the provider's state
   * nested. Call it between passes (not from inside process()), with the guest stopped and the
   * QPs suspended, so that nothing moves while it is taken.
   */
  saveState(): Uint8Array {
    if (this.processing) throw new StateError(StateErrorCode.Busy, 'the device is inside a pass');
    return encodeDeviceState(captureDevice(this));
  }

  /**
   * R9: take a saved device on this device, just created over a DeviceMemory whose RAM holds the
   * guest's pages and over a provider with no objects, bound to the VM's address. Everything is
   * checked first; a refused state (StateError) leaves device and provider as they were. The
   * provider's QPs come back SUSPENDED: resume them once the address is bound. Every queue and CQ
   * is then looked at on the next pass, so nothing a kick or a completion announced is missed.
   */
  restoreState(state: Uint8Array): void {
    restoreDevice(this, this.factory, state);
    for (let vq = 0; vq < this.transport.numQueues; vq++) if (this.transport.queueEnabled(vq)) this.transport.setPending(vq);
    for (const cq of this.core.cqByVerbs.keys()) this.verbsPending.add(cq);
    this.transport.wake.notify();
  }

  /** The state a guest sees for a QP (tests and logs). */
  qpState(qpn: number): QpState | undefined {
    return this.core.qps.get(qpn)?.state;
  }
}
