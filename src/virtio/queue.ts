// What the device side of a virtqueue offers, whatever its ring format (split or packed).
// The device layer talks to this; split-queue.ts and packed-queue.ts implement it over their
// kernels, which come either from the Wasm module or from their TypeScript twins.
import type { DescriptorChain } from './chain.js';

/** Feature bits a queue cares about (virtio 1.2 section 6). */
export const VIRTIO_F_INDIRECT_DESC = 28;
export const VIRTIO_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_RING_PACKED = 34;

/** Which implementation of the ring kernels a queue runs: Wasm, or the portable TypeScript twin. */
export type KernelEngine = 'wasm' | 'ts';

export interface DeviceQueue {
  readonly format: 'split' | 'packed';
  readonly size: number;
  /** Set once the driver broke the ring; the queue then refuses all work. */
  readonly broken: boolean;

  /**
   * Pop up to `max` available chains. The chains are views into the queue's record buffer and
   * stay valid until the next pop. Throws VirtioError if the driver broke the ring.
   */
  pop(max?: number): DescriptorChain[];

  /** Queue a used entry for `chain`, reporting `writtenBytes` written into it. */
  addUsed(chain: DescriptorChain, writtenBytes: number): void;

  /** Publish the queued used entries; returns true if the driver asked to be notified. */
  flush(): boolean;

  /**
   * Ask the driver to kick on new buffers (after the device went idle). Returns true if buffers
   * arrived in the meantime, so the caller should pop again before sleeping.
   */
  enableNotification(): boolean;

  /** Tell the driver kicks are not needed (the device is polling). */
  disableNotification(): void;
}
