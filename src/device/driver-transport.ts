// What a driver touches of a virtio-rdma device's transport: virtio-pci's common configuration
// (features, status, config space, queue setup) and the doorbells. RdmaTransport is it, in the
// device's own thread; a device backend in another thread is reached through a proxy that has
// the same shape (src/backend/transport-proxy.ts), as a VMM reaches a vhost-user backend.
import type { Doorbell } from '../virtio/doorbell.js';
import type { QueueConfig } from './queue-factory.js';
import type { QueueMap } from './queue-map.js';

/** The device status as the driver reads it. */
export interface DriverStatusView {
  readonly status: number;
  readonly needsReset: boolean;
}

export interface DriverTransport {
  readonly deviceFeatures: bigint;
  readonly status: DriverStatusView;
  /** Virtqueue numbering (§5.1): fixed by the config space, so the driver may compute it. */
  readonly map: QueueMap;
  setDriverFeatures(features: bigint): void;
  /** Write the device status; returns what reads back. */
  writeStatus(value: number): number;
  readConfig(off: number, len: number): Uint8Array;
  maxQueueSize(vq: number): number;
  configureQueue(vq: number, config: QueueConfig): void;
  enableQueue(vq: number): void;
  resetQueue(vq: number): void;
  queueEnabled(vq: number): boolean;
  kick(vq: number): void;
  callDoorbell(vq: number): Doorbell;
}
