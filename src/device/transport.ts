// The in-process equivalent of virtio-pci's common configuration for one virtio-rdma device
// (virtio 1.2 §4.1.4.3): device and driver features, the device status, config space reads,
// per-queue setup (size, ring addresses, enable, reset), kick doorbells (driver -> device) and call
// doorbells (device -> driver). The guest library drives it directly; a vhost-user front end
// drives it through the same calls. Doorbells are words in the device arena (doorbell-block.ts),
// so a device loop in another thread can sleep on them.
import type { DeviceMemory } from '../memory/device-memory.js';
import type { Doorbell } from '../virtio/doorbell.js';
import { DoorbellBlock } from './doorbell-block.js';
import { VirtioError } from '../virtio/errors.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED } from '../virtio/queue.js';
import { DeviceStatus, VirtioStatus } from '../virtio/status.js';
import { RdmaStatus, VIRTIO_F_RING_RESET, VIRTIO_ID_RDMA, featureBit } from './abi.js';
import { CONFIG_BYTES, encodeConfig, type DeviceConfig } from './config.js';
import type { DriverTransport } from './driver-transport.js';
import { DeviceError } from './errors.js';
import type { OwnedQueue, QueueConfig, QueueFactory } from './queue-factory.js';
import { QueueMap } from './queue-map.js';

/** virtio 1.2 §2.6: the largest queue size a driver may choose, per queue kind (§15). */
export interface QueueNumMax {
  control: number;
  cq: number;
  wq: number;
  srq: number;
  event: number;
}

export const DEFAULT_QUEUE_NUM_MAX: QueueNumMax = { control: 256, cq: 4096, wq: 1024, srq: 4096, event: 256 };

interface QueueSlot {
  config: QueueConfig;
  queue: OwnedQueue | null;
}

export class RdmaTransport implements DriverTransport {
  readonly deviceId = VIRTIO_ID_RDMA;
  readonly status: VirtioStatus;
  readonly map: QueueMap;
  private readonly configBytes: Uint8Array;
  private readonly slots: QueueSlot[];
  /** The doorbell words, in the device arena (a driver in another thread maps the same words). */
  readonly bells: DoorbellBlock;
  /** Rung on every kick and on device-side work (completions), so one loop can sleep on it. */
  readonly wake: Doorbell;
  /** Configuration change notifications (NEEDS_RESET, virtio 1.2 §2.1.2). */
  readonly configChange: Doorbell;
  /** Called after every kick: an inline device processes right away (a vCPU exit handled in place). */
  onKick: ((vq: number) => void) | null = null;
  /** Called when the driver writes 0 to the status (reset), before the queues are dropped. */
  onReset: (() => void) | null = null;
  /** Called when a queue is reset or about to be dropped, before its DeviceQueue is disposed. */
  onQueueReset: ((vq: number) => void) | null = null;

  constructor(
    readonly dm: DeviceMemory,
    readonly config: DeviceConfig,
    deviceFeatures: bigint,
    private readonly factory: QueueFactory,
    readonly queueNumMax: QueueNumMax = DEFAULT_QUEUE_NUM_MAX,
    eventq = false,
  ) {
    this.status = new VirtioStatus(deviceFeatures);
    this.map = new QueueMap(config.maxCq, config.maxQp, config.maxSrq, eventq);
    this.configBytes = encodeConfig(config);
    const n = this.map.numQueues;
    this.slots = Array.from({ length: n }, () => ({ config: emptyConfig(), queue: null }));
    const bytes = DoorbellBlock.bytes(n);
    const base = dm.arena.alloc(bytes, 64);
    dm.guest.bytes.fill(0, base, base + bytes);
    this.bells = new DoorbellBlock(dm.memory.buffer, base, n);
    this.wake = this.bells.wake;
    this.configChange = this.bells.configChange;
  }

  get deviceFeatures(): bigint {
    return this.status.deviceFeatures;
  }

  get numQueues(): number {
    return this.map.numQueues;
  }

  get format(): 'split' | 'packed' {
    return this.status.has(VIRTIO_F_RING_PACKED) ? 'packed' : 'split';
  }

  /** Config space generation (virtio 1.2 §2.5): the config never changes, so it stays 0. */
  get configGeneration(): number {
    return 0;
  }

  /** Read `len` bytes of config space at `off` (§4, little-endian). */
  readConfig(off: number, len: number): Uint8Array {
    if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > CONFIG_BYTES) {
      throw new DeviceError(RdmaStatus.InvalidArg, `config read ${off}+${len} is outside the ${CONFIG_BYTES}-byte config space`);
    }
    return this.configBytes.slice(off, off + len);
  }

  setDriverFeatures(features: bigint): void {
    this.status.setDriverFeatures(features);
  }

  /** Write the device status; 0 resets the device (virtio 1.2 §2.4). Returns what reads back. */
  writeStatus(value: number): number {
    if (value === 0) {
      this.onReset?.();
      for (let q = 0; q < this.slots.length; q++) this.dropQueue(q);
      this.bells.clearPending();
    }
    return this.status.write(value);
  }

  /** The device found a ring broken: NEEDS_RESET on this device only, and tell the driver. */
  markNeedsReset(reason: string): void {
    this.status.markNeedsReset(reason);
    this.configChange.notify();
  }

  maxQueueSize(vq: number): number {
    const role = this.map.role(vq);
    if (role === null) return 0;
    switch (role.kind) {
      case 'control': return this.queueNumMax.control;
      case 'cq': return this.queueNumMax.cq;
      case 'sq':
      case 'rq': return this.queueNumMax.wq;
      case 'srq': return this.queueNumMax.srq;
      case 'event': return this.queueNumMax.event;
    }
  }

  /** Size and ring addresses of a disabled queue (queue_size, queue_desc/driver/device). */
  configureQueue(vq: number, config: QueueConfig): void {
    const slot = this.writableSlot(vq);
    const max = this.maxQueueSize(vq);
    if (!Number.isInteger(config.size) || config.size < 1 || config.size > max) {
      throw new DeviceError(RdmaStatus.InvalidArg, `queue ${vq}: size ${config.size} is not in 1..${max}`);
    }
    slot.config = { ...config };
  }

  /**
   * queue_enable = 1. A configuration that is not a usable ring is a ring fault (§13.2): the queue
   * stays disabled and the device needs reset.
   */
  enableQueue(vq: number): void {
    const slot = this.writableSlot(vq);
    if (slot.config.size === 0) throw new DeviceError(RdmaStatus.InvalidArg, `queue ${vq} has no size`);
    const features = { eventIdx: this.status.has(VIRTIO_F_EVENT_IDX), indirectDesc: this.status.has(VIRTIO_F_INDIRECT_DESC) };
    try {
      slot.queue = this.factory.create(this.dm, this.format, slot.config, features, `vq${vq}`);
    } catch (err) {
      if (err instanceof VirtioError) {
        this.markNeedsReset(err.message);
        return;
      }
      throw err;
    }
    // Buffers may already be waiting: look at the queue on the next pass.
    this.setPending(vq);
  }

  /** queue_reset (VIRTIO_F_RING_RESET, virtio 1.2 §2.6.1): back to disabled, buffers forgotten. */
  resetQueue(vq: number): void {
    this.slot(vq);
    if (!this.status.has(VIRTIO_F_RING_RESET)) throw new DeviceError(RdmaStatus.NotSupported, 'VIRTIO_F_RING_RESET was not negotiated');
    this.dropQueue(vq);
  }

  /** The enabled queue `vq`, or null. */
  queue(vq: number): OwnedQueue | null {
    return this.slots[vq]?.queue ?? null;
  }

  queueEnabled(vq: number): boolean {
    return this.queue(vq) !== null;
  }

  /** The driver notifies the device of new buffers on `vq`. */
  kick(vq: number): void {
    this.slot(vq);
    this.bells.kick(vq);
    this.onKick?.(vq);
  }

  /** Mark `vq` as needing service without a kick (device-internal). */
  setPending(vq: number): void {
    this.bells.setPending(vq);
  }

  /** Queues kicked since the last call, in ascending order; clears them. */
  takePending(): number[] {
    return this.bells.takePending();
  }

  /** The device notifies the driver of used buffers on `vq`. */
  call(vq: number): void {
    this.bells.calls[vq].notify();
  }

  kickDoorbell(vq: number): Doorbell {
    this.slot(vq);
    return this.bells.kicks[vq];
  }

  callDoorbell(vq: number): Doorbell {
    this.slot(vq);
    return this.bells.calls[vq];
  }

  // ---- migration (R9) -----------------------------------------------------------------------

  /** A queue's configuration as the driver wrote it (enabled or not). */
  queueConfig(vq: number): QueueConfig {
    return { ...this.slot(vq).config };
  }

  /**
   * The queues ever set up or rung — configured, enabled, or with a doorbell count — in ascending
   * order. One pass over the slots and the doorbell words: a device has thousands of queues and a
   * durable backend asks at every commit.
   */
  touchedQueues(): number[] {
    const out: number[] = [];
    const words = new Int32Array(this.dm.memory.buffer, this.bells.base, 2 * this.slots.length);
    for (let vq = 0; vq < this.slots.length; vq++) {
      const slot = this.slots[vq];
      if (slot.config.size !== 0 || slot.queue !== null || words[2 * vq] !== 0 || words[2 * vq + 1] !== 0) out.push(vq);
    }
    return out;
  }

  /** Counts of a queue's kick and call doorbells. */
  doorbells(vq: number): { kick: number; call: number } {
    this.slot(vq);
    return { kick: this.bells.kicks[vq].value(), call: this.bells.calls[vq].value() };
  }

  /**
   * Put a migrated queue in place: its configuration, and the queue built from its state (or
   * none, for a configured queue that was not enabled), on a device that was just created.
   */
  restoreQueue(vq: number, config: QueueConfig, queue: OwnedQueue | null, doorbells: { kick: number; call: number }): void {
    const slot = this.slot(vq);
    if (slot.queue !== null) throw new DeviceError(RdmaStatus.InvalidArg, `queue ${vq} is enabled`);
    slot.config = { ...config };
    slot.queue = queue;
    const words = new Int32Array(this.dm.memory.buffer, this.bells.base + 8 * vq, 2);
    Atomics.store(words, 0, doorbells.kick | 0);
    Atomics.store(words, 1, doorbells.call | 0);
  }

  /** Release the doorbell words (the device is gone). */
  dispose(): void {
    for (let q = 0; q < this.slots.length; q++) this.dropQueue(q);
    this.dm.arena.release(this.bells.base);
  }

  private slot(vq: number): QueueSlot {
    const slot = this.slots[vq];
    if (!Number.isInteger(vq) || slot === undefined) throw new DeviceError(RdmaStatus.InvalidArg, `no virtqueue ${vq} (the device has ${this.slots.length})`);
    return slot;
  }

  /** Queue setup is allowed after FEATURES_OK, on a disabled queue, before DRIVER_OK or with RING_RESET. */
  private writableSlot(vq: number): QueueSlot {
    const slot = this.slot(vq);
    const st = this.status.status;
    if ((st & DeviceStatus.FEATURES_OK) === 0) throw new DeviceError(RdmaStatus.InvalidArg, 'queues are set up after FEATURES_OK');
    if (slot.queue !== null) throw new DeviceError(RdmaStatus.InvalidArg, `queue ${vq} is enabled; reset it first`);
    if ((st & DeviceStatus.DRIVER_OK) !== 0 && !this.status.has(VIRTIO_F_RING_RESET)) {
      throw new DeviceError(RdmaStatus.InvalidArg, `queue ${vq}: setting up a queue after DRIVER_OK needs VIRTIO_F_RING_RESET`);
    }
    return slot;
  }

  private dropQueue(vq: number): void {
    const slot = this.slots[vq];
    if (slot.queue !== null) {
      this.onQueueReset?.(vq);
      slot.queue.dispose();
      slot.queue = null;
    }
    slot.config = emptyConfig();
  }
}

function emptyConfig(): QueueConfig {
  return { size: 0, descGpa: 0, driverGpa: 0, deviceGpa: 0 };
}

/** Transport features every vrdma device offers (§3.1), plus packed rings if the factory builds them. */
export function transportFeatures(factory: QueueFactory): bigint {
  let f = featureBit(28) | featureBit(29) | featureBit(32) | featureBit(VIRTIO_F_RING_RESET);
  if (factory.formats.includes('packed')) f |= featureBit(VIRTIO_F_RING_PACKED);
  return f;
}
