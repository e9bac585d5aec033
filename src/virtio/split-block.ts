// The split queue block: the device-private state of one split virtqueue in the device arena,
// read by the kernels (layout documented in assembly/split-ring.ts, the source of truth), and the
// kernel interface both implementations (Wasm and the TypeScript twin) offer.
import type { KernelExports } from '../wasm/loader.js';

export const SQ_BLOCK_BYTES = 64;
export const SQ_SIZE = 0;
export const SQ_FEATURES = 2;
export const SQ_DESC_OFF = 4;
export const SQ_AVAIL_OFF = 8;
export const SQ_USED_OFF = 12;
export const SQ_REGION_TABLE_OFF = 16;
export const SQ_NEXT_AVAIL = 20;
export const SQ_NEXT_USED = 22;
export const SQ_SIGNALLED_USED = 24;
export const SQ_FLAGS = 26;
export const SQ_DESC_GPA = 32;
export const SQ_AVAIL_GPA = 40;
export const SQ_USED_GPA = 48;

export const SQ_FEATURE_EVENT_IDX = 1;
export const SQ_FEATURE_INDIRECT = 2;
/** SQ_FLAGS bit: SQ_SIGNALLED_USED holds a used idx at which a notification was decided. */
export const SQ_FLAG_SIGNALLED_VALID = 1;

/** virtq_desc flags (virtio 1.2 2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** virtq_avail.flags (2.7.6) and virtq_used.flags (2.7.8). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

export const DESC_BYTES = 16;
/** Used element {u32 id, u32 len} (2.7.8), also the format of the kernel's push buffer. */
export const USED_ELEM_BYTES = 8;
export const MAX_SPLIT_QUEUE_SIZE = 32768;

/** Bytes of each ring for a queue of `size` (2.7: the event words are always counted). */
export function splitRingBytes(size: number): { desc: number; avail: number; used: number } {
  return { desc: DESC_BYTES * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

/** Alignment of each ring in guest-physical memory (2.7, "Virtqueue Alignment"). */
export const SPLIT_RING_ALIGN = { desc: 16, avail: 2, used: 4 } as const;

/**
 * The split ring kernels, with the signatures of assembly/split-ring.ts. Pointers are offsets in
 * the device's shared memory; results are counts or flags >= 0, or a status < 0.
 */
export interface SplitKernels {
  splitPop(q: number, out: number, outBytes: number, maxChains: number): number;
  splitPushUsed(q: number, used: number, n: number): number;
  splitEnableNotify(q: number): number;
  splitDisableNotify(q: number): number;
}

/** The Wasm implementation, from an instance's exports. */
export function wasmSplitKernels(exports: KernelExports): SplitKernels {
  const pick = <K extends keyof SplitKernels>(name: K): SplitKernels[K] => {
    const fn = exports[name];
    if (typeof fn !== 'function') throw new Error(`Wasm kernels lack ${name}: rebuild with "npm run build"`);
    return fn as SplitKernels[K];
  };
  return {
    splitPop: pick('splitPop'),
    splitPushUsed: pick('splitPushUsed'),
    splitEnableNotify: pick('splitEnableNotify'),
    splitDisableNotify: pick('splitDisableNotify'),
  };
}
