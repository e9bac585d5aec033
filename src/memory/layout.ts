// Layout of a device's shared WebAssembly.Memory (DESIGN.md "Memory model"):
//
//   [0, WASM_DATA_BYTES)            the kernel module's static data (CRC tables, constants)
//   [regionTableOff, +4 KiB)        guest region table (assembly/region.ts)
//   [arenaOff, arenaOff+arenaBytes) device arena: queue blocks, MR page tables, dirty log, buffers
//   [ramBase, ramBase+ramBytes)     guest RAM window; regions are placed here (hotplug adds more)
//
// The memory is created at its final size (like a VMM's maxmem): shared Wasm memory reserves its
// maximum anyway, untouched pages cost nothing, and views never go stale because nothing grows.
import { MemoryError, MemoryErrorCode } from './errors.js';

export const WASM_PAGE_BYTES = 65536;
/** Room kept for the kernel module's static data; the loader checks its __heap_base fits. */
export const WASM_DATA_BYTES = 64 * 1024;
export const REGION_TABLE_CAPACITY = 64;
export const REGION_TABLE_BYTES = 16 + 32 * REGION_TABLE_CAPACITY;
/** Guest RAM regions are placed on 2 MiB boundaries so huge pages stay aligned. */
export const RAM_ALIGN_BYTES = 2 * 1024 * 1024;
/** wasm32 addresses 4 GiB; larger guests need memory64 (behind a flag in Node 20). */
export const WASM32_LIMIT_BYTES = 4 * 1024 * 1024 * 1024;

/** Plain data: what a worker needs to find everything in a device memory. */
export interface MemoryLayout {
  readonly regionTableOff: number;
  readonly arenaOff: number;
  readonly arenaBytes: number;
  readonly ramBase: number;
  readonly ramBytes: number;
  readonly totalBytes: number;
}

export interface LayoutOptions {
  /** Size of the guest RAM window: the most guest RAM this device may ever hold (maxmem). */
  readonly ramBytes: number;
  /** Size of the device arena. */
  readonly arenaBytes?: number;
}

export const DEFAULT_ARENA_BYTES = 32 * 1024 * 1024;

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export function computeLayout(options: LayoutOptions): MemoryLayout {
  const arenaBytes = alignUp(options.arenaBytes ?? DEFAULT_ARENA_BYTES, 4096);
  if (!Number.isSafeInteger(options.ramBytes) || options.ramBytes <= 0) {
    throw new MemoryError(MemoryErrorCode.Overflow, `guest RAM size must be a positive integer, got ${options.ramBytes}`);
  }
  const regionTableOff = WASM_DATA_BYTES;
  const arenaOff = alignUp(regionTableOff + REGION_TABLE_BYTES, 4096);
  const ramBase = alignUp(arenaOff + arenaBytes, RAM_ALIGN_BYTES);
  const ramBytes = alignUp(options.ramBytes, RAM_ALIGN_BYTES);
  const totalBytes = ramBase + ramBytes;
  if (totalBytes > WASM32_LIMIT_BYTES - WASM_PAGE_BYTES) {
    throw new MemoryError(
      MemoryErrorCode.TooLarge,
      `a guest RAM window of ${ramBytes} bytes needs ${totalBytes} bytes of Wasm memory; wasm32 stops at 4 GiB ` +
        '(about 3.5 GiB of guest RAM); larger guests need memory64, which Node 20 has only behind --experimental-wasm-memory64',
    );
  }
  return { regionTableOff, arenaOff, arenaBytes, ramBase, ramBytes, totalBytes };
}
