// Building a DeviceQueue for a ring the driver configured, in whichever format was negotiated
// (VIRTIO_F_RING_PACKED). The transport takes the three ring addresses as virtio-pci's common
// config names them (queue_desc, queue_driver, queue_device: for split rings the available and
// used rings, for packed rings the driver and device event suppression areas).
import type { DeviceMemory } from '../memory/device-memory.js';
import type { DeviceQueue, KernelEngine } from '../virtio/queue.js';
import { initialPackedQueueState } from '../virtio/packed-queue.js';
import { type QueueState, queueFromState } from '../virtio/queue-state.js';
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
  /** Build a queue from a migrated state (R9); throws VirtioError if it is not a usable ring. */
  fromState?(dm: DeviceMemory, state: QueueState, name: string): OwnedQueue;
}

/** Split and packed rings over the Wasm kernels or their TypeScript twins. */
export function ringQueueFactory(engine: KernelEngine = 'wasm', formats: readonly RingFormat[] = ['split', 'packed']): QueueFactory {
  return {
    formats,
    create(dm, format, config, features, name) {
      if (!formats.includes(format)) throw new DeviceError(RdmaStatus.NotSupported, `${name}: ${format} rings are not offered`);
      if (format === 'split') {
        return queueFromState(dm, {
          format, size: config.size, descGpa: config.descGpa, availGpa: config.driverGpa, usedGpa: config.deviceGpa, nextAvail: 0, nextUsed: 0,
          eventIdx: features.eventIdx, indirectDesc: features.indirectDesc,
        }, engine);
      }
      const rings = { descGpa: config.descGpa, driverEventGpa: config.driverGpa, deviceEventGpa: config.deviceGpa };
      return queueFromState(dm, { format, ...initialPackedQueueState(config.size, rings, { eventIdx: features.eventIdx, indirect: features.indirectDesc }) }, engine);
    },
    fromState(dm, state) {
      if (!formats.includes(state.format)) throw new DeviceError(RdmaStatus.NotSupported, `${state.format} rings are not offered`);
      return queueFromState(dm, state, engine);
    },
  };
}
