// The packed-ring kernels as the queue calls them, from either engine: the Wasm module
// (assembly/packed-ring.ts) or the TypeScript twin (packed-twin.ts). Same signatures, same
// shared memory, same results.
import { type KernelExports, instantiateKernels } from '../wasm/loader.js';
import { PackedTwin } from './packed-twin.js';
import type { KernelEngine } from './queue.js';

export interface PackedKernels {
  /** Pop up to maxChains chains into records at [out, out+outBytes): count or status < 0. */
  packedPop(q: number, out: number, outBytes: number, maxChains: number): number;
  /** Publish n used elements (8 bytes each at `used`): 1 to notify the driver, 0 not, or status < 0. */
  packedPushUsed(q: number, used: number, n: number): number;
  /** Enable available buffer notifications: 1 if a chain is already available. */
  packedEnableNotify(q: number): number;
  /** Disable available buffer notifications. */
  packedDisableNotify(q: number): number;
}

/** The Wasm exports narrowed to the packed-ring kernels. */
export function wasmPackedKernels(exports: KernelExports): PackedKernels {
  const fn = (name: string) => {
    const f = exports[name];
    if (typeof f !== 'function') throw new Error(`Wasm kernels lack ${name}: rebuild with "npm run build"`);
    return f as (...args: number[]) => number;
  };
  return {
    packedPop: fn('packedPop'),
    packedPushUsed: fn('packedPushUsed'),
    packedEnableNotify: fn('packedEnableNotify'),
    packedDisableNotify: fn('packedDisableNotify'),
  };
}

/** Kernels of `engine` over `memory`; a Wasm module compiled elsewhere may be passed in. */
export function packedKernels(engine: KernelEngine, memory: WebAssembly.Memory, module?: WebAssembly.Module): PackedKernels {
  return engine === 'wasm' ? wasmPackedKernels(instantiateKernels(memory, module)) : new PackedTwin(memory);
}
