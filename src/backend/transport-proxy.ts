// The driver's view of a device that runs in a backend thread (device-backend.ts): the same
// DriverTransport the guest library drives in-process, with the configuration calls made
// synchronously through the control block's call area (call-channel.ts) and the doorbells rung
// directly in shared memory. The device status is read from the block's mirror, which the backend
// updates after every call and every pass, so polling it costs no call.
import type { DriverStatusView, DriverTransport } from '../device/driver-transport.js';
import { DoorbellBlock } from '../device/doorbell-block.js';
import { DeviceError } from '../device/errors.js';
import type { QueueConfig } from '../device/queue-factory.js';
import { QueueMap } from '../device/queue-map.js';
import type { Doorbell } from '../virtio/doorbell.js';
import { DeviceStatus } from '../virtio/status.js';
import { CallClient, crossedMessage, registerErrorRebuilder } from './call-channel.js';
import { type ControlBlock, W } from './control-block.js';
import { BackendError, BackendErrorCode } from './errors.js';

registerErrorRebuilder((e) => (e.name === 'DeviceError' && typeof e.status === 'number' ? new DeviceError(e.status, crossedMessage(e)) : null));

/** What `describe` answers: the fixed facts of the device. */
export interface DeviceDescription {
  deviceFeatures: bigint;
  maxCq: number;
  maxQp: number;
  maxSrq: number;
  eventq: boolean;
  bellsBase: number;
}

export class TransportProxy implements DriverTransport {
  readonly deviceFeatures: bigint;
  readonly map: QueueMap;
  private readonly client: CallClient;
  private readonly bells: DoorbellBlock;

  constructor(private readonly block: ControlBlock, memory: WebAssembly.Memory, timeoutMs?: number) {
    this.client = new CallClient(block, timeoutMs);
    const d = this.client.call('describe', []) as DeviceDescription;
    this.deviceFeatures = d.deviceFeatures;
    this.map = new QueueMap(d.maxCq, d.maxQp, d.maxSrq, d.eventq);
    this.bells = new DoorbellBlock(memory.buffer, d.bellsBase, this.map.numQueues);
  }

  get status(): DriverStatusView {
    const status = this.block.load(W.status) & 0xff;
    return { status, needsReset: (status & DeviceStatus.NEEDS_RESET) !== 0 };
  }

  setDriverFeatures(features: bigint): void {
    this.client.call('setDriverFeatures', [features]);
  }

  writeStatus(value: number): number {
    return this.client.call('writeStatus', [value]) as number;
  }

  readConfig(off: number, len: number): Uint8Array {
    return this.client.call('readConfig', [off, len]) as Uint8Array;
  }

  maxQueueSize(vq: number): number {
    return this.client.call('maxQueueSize', [vq]) as number;
  }

  configureQueue(vq: number, config: QueueConfig): void {
    this.client.call('configureQueue', [vq, config]);
  }

  enableQueue(vq: number): void {
    this.client.call('enableQueue', [vq]);
  }

  resetQueue(vq: number): void {
    this.client.call('resetQueue', [vq]);
  }

  queueEnabled(vq: number): boolean {
    return this.client.call('queueEnabled', [vq]) as boolean;
  }

  /**
   * A call to the backend outside the virtio transport: what a VMM asks of the device to migrate
   * it (device-backend.ts lists them). Synchronous, like every call here.
   */
  vmmCall(method: string, args: unknown[] = []): unknown {
    return this.client.call(method, args);
  }

  kick(vq: number): void {
    this.bells.kick(this.queue(vq));
  }

  callDoorbell(vq: number): Doorbell {
    return this.bells.calls[this.queue(vq)];
  }

  private queue(vq: number): number {
    if (!Number.isInteger(vq) || vq < 0 || vq >= this.map.numQueues) {
      throw new BackendError(BackendErrorCode.BadCall, `no virtqueue ${vq} (the device has ${this.map.numQueues})`);
    }
    return vq;
  }
}
