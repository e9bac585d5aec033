// Building a DeviceQueue for a ring the driver configured, in whichever format was negotiated
// (VIRTIO_F_RING_PACKED). The transport takes the three ring addresses as virtio-pci's common
// config names them (queue_desc, queue_driver, queue_device: for split rings the available and
// used rings, for packed rings the driver and device event suppression areas).
import type { DeviceMemory } from '../memory/device-memory.js';
import type { DeviceQueue, KernelEngine } from '../virtio/queue.js';
import { SplitQueue } from '../virtio/split-queue.js';
import { RdmaStatus } from './abi.js';
import { DeviceError } from './errors.js';

export type RingFormat = 'split' | 'packed';

/** A queue's configuration as the driver wrote it. */
export interface QueueConfig {
  size: number;
  descGpa: number;
  driverGpa: number;
  deviceGpa: number;
}

export interface QueueFeatures {
  eventIdx: boolean;
  indirectDesc: boolean;
}

/** A DeviceQueue the transport owns and releases on queue reset. */
export interface OwnedQueue extends DeviceQueue {
  dispose(): void;
}

export interface QueueFactory {
  /** Ring formats this factory builds; the device offers VIRTIO_F_RING_PACKED only with 'packed'. */
  readonly formats: readonly RingFormat[];
  /** Build the queue; throws VirtioError if the configuration is not a usable ring. */
  create(dm: DeviceMemory, format: RingFormat, config: QueueConfig, features: QueueFeatures, name: string): OwnedQueue;
}

/** The split-ring factory over the Wasm kernels or their TypeScript twins. */
export function splitQueueFactory(engine: KernelEngine = 'wasm'): QueueFactory {
  return {
    formats: ['split'],
    create(dm, format, config, features, name) {
      if (format !== 'split') throw new DeviceError(RdmaStatus.NotSupported, `${name}: ${format} rings are not available`);
      const state = {
        size: config.size,
        descGpa: config.descGpa,
        availGpa: config.driverGpa,
        usedGpa: config.deviceGpa,
        nextAvail: 0,
        nextUsed: 0,
        eventIdx: features.eventIdx,
        indirectDesc: features.indirectDesc,
      };
      return SplitQueue.fromState(dm, state, engine, undefined, name);
    },
  };
}
