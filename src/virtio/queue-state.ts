// Either ring format's queue, by plain data: its state (what migration carries) and where its
// device-private buffers are (what a worker needs to attach to a queue another thread built).
import type { DeviceMemory } from '../memory/device-memory.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { instantiateKernels } from '../wasm/loader.js';
import { PackedQueue, type PackedQueueHandle, type PackedQueueState } from './packed-queue.js';
import type { DeviceQueue, KernelEngine } from './queue.js';
import { SplitQueue, type SplitQueuePlacement, type SplitQueueState } from './split-queue.js';

export type QueueState = ({ format: 'split' } & SplitQueueState) | ({ format: 'packed' } & PackedQueueState);

export type QueueLocation = { format: 'split'; placement: SplitQueuePlacement } | { format: 'packed'; handle: PackedQueueHandle };

export type AnyQueue = SplitQueue | PackedQueue;

/** Build a device queue from untrusted state (validated by the format's fromState). */
export function queueFromState(dm: DeviceMemory, state: QueueState, engine: KernelEngine): AnyQueue {
  const { format, ...rest } = state;
  if (format === 'split') return SplitQueue.fromState(dm, rest as SplitQueueState, engine);
  if (format === 'packed') return PackedQueue.fromState(dm, rest as PackedQueueState, engine);
  throw new RangeError(`unknown ring format ${String(format)}`);
}

export function queueLocation(queue: AnyQueue): QueueLocation {
  return queue instanceof SplitQueue ? { format: 'split', placement: queue.placement() } : { format: 'packed', handle: queue.handle() };
}

/** Attach, in this thread, to a queue another thread built. Only one thread may drive it. */
export function attachQueue(guest: GuestMemory, where: QueueLocation, engine: KernelEngine, module?: WebAssembly.Module): DeviceQueue {
  if (where.format === 'split') {
    const kernels = engine === 'wasm' ? instantiateKernels(guest.memory, module) : undefined;
    return SplitQueue.attach(guest, where.placement, engine, kernels);
  }
  return PackedQueue.attach(guest.memory, where.handle, engine, module, guest.log);
}
