// A packed ring between the guest driver library and a device queue, over one small device
// memory with two guest regions and a hole, plus canary helpers: everything outside the guest's
// regions and the queue's own arena blocks is filled with a pattern and must stay unchanged.
import { PackedDriver, type PackedDriverOptions } from '../../src/guest/packed-ring.js';
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import type { Region } from '../../src/memory/region-table.js';
import type { PackedKernels } from '../../src/virtio/packed-kernels.js';
import { PackedQueue, type PackedQueueState } from '../../src/virtio/packed-queue.js';
import type { KernelEngine } from '../../src/virtio/queue.js';

const MiB = 1024 * 1024;
/** Low region: rings, tables and data buffers. */
export const LOW_GPA = 0;
export const LOW_BYTES = 1 * MiB;
/** High region above 4 GiB, 2 MiB past the low one's backing: the gap holds canaries. */
export const HIGH_GPA = 0x1_0000_0000;
export const HIGH_BYTES = 64 * 1024;

export interface Rig {
  dm: DeviceMemory;
  low: Region;
  high: Region;
  /** Guest-physical allocator for the driver (rings, indirect tables). */
  ram: Arena;
  /** Guest-physical allocator for data buffers. */
  data: Arena;
}

export function makeRig(): Rig {
  const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 2 * MiB });
  const low = dm.addRegion(LOW_GPA, LOW_BYTES);
  const high = dm.addRegion(HIGH_GPA, HIGH_BYTES);
  return { dm, low, high, ram: new Arena(LOW_GPA + 4096, LOW_BYTES / 2 - 4096), data: new Arena(LOW_GPA + LOW_BYTES / 2, LOW_BYTES / 2) };
}

export interface Ring {
  driver: PackedDriver;
  queue: PackedQueue;
}

export function makeRing(rig: Rig, options: PackedDriverOptions, engine: KernelEngine, kernels?: PackedKernels, state?: PackedQueueState): Ring {
  const driver = new PackedDriver(rig.dm.guest, rig.ram, options);
  const queue = PackedQueue.fromState(rig.dm, state ?? driver.deviceState(), engine, kernels);
  return { driver, queue };
}

/** Byte ranges [off, off+len) of the memory that may change. */
export type Ranges = ReadonlyArray<readonly [number, number]>;

/** Ranges a queue may write: the guest regions and its own arena blocks. */
export function allowedRanges(rig: Rig, queue: PackedQueue): Ranges {
  return [...regionRanges(rig), ...queueRanges(queue)];
}

function outside(total: number, start: number, allowed: Ranges): Array<[number, number]> {
  const sorted = [...allowed].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  let at = start;
  for (const [off, len] of sorted) {
    if (off > at) out.push([at, off]);
    at = Math.max(at, off + len);
  }
  if (at < total) out.push([at, total]);
  return out;
}

let cachedCanary: Uint8Array | undefined;

/** A byte pattern no kernel writes by accident: position-dependent, never all one value. */
function canaryPattern(bytes: number): Uint8Array {
  if (cachedCanary === undefined || cachedCanary.length < bytes) {
    cachedCanary = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) cachedCanary[i] = (i * 131 + 7) & 0xff;
  }
  return cachedCanary;
}

export interface Canaries {
  /** What changed outside the planted ranges, `alsoAllowed` (blocks allocated later) excepted. */
  check(alsoAllowed?: Ranges): string[];
  /** Plant the canary again over ranges that were in use (a disposed queue's blocks). */
  replant(ranges: Ranges): void;
  /** Plant the canary again everywhere it was planted (after reporting a violation). */
  replantAll(): void;
}

/** Fill everything outside `allowed` (past the Wasm data) with a canary pattern. */
export function plantCanaries(rig: Rig, allowed: Ranges): Canaries {
  const bytes = new Uint8Array(rig.dm.memory.buffer);
  const tableEnd = rig.dm.layout.regionTableOff + 16 + 32 * 64;
  const table = bytes.slice(rig.dm.layout.regionTableOff, tableEnd);
  const canary = canaryPattern(bytes.length);
  const plantAll = () => {
    for (const [a, b] of outside(bytes.length, tableEnd, allowed)) bytes.set(canary.subarray(a, b), a);
  };
  plantAll();
  return {
    replantAll: plantAll,
    check(alsoAllowed = []) {
      const bad: string[] = [];
      if (Buffer.compare(table, bytes.subarray(rig.dm.layout.regionTableOff, tableEnd)) !== 0) bad.push('region table changed');
      for (const [a, b] of outside(bytes.length, tableEnd, [...allowed, ...alsoAllowed])) {
        if (Buffer.compare(canary.subarray(a, b), bytes.subarray(a, b)) !== 0) bad.push(`bytes in [${a}, ${b}) outside the guest regions changed`);
      }
      return bad;
    },
    replant(ranges) {
      for (const [off, len] of ranges) bytes.set(canary.subarray(off, off + len), off);
    },
  };
}

/** The guest regions of a rig. */
export function regionRanges(rig: Rig): Ranges {
  return [
    [rig.low.hostOffset, rig.low.size],
    [rig.high.hostOffset, rig.high.size],
  ];
}

/** A queue's own arena blocks. */
export function queueRanges(queue: PackedQueue): Ranges {
  const h = queue.handle();
  return [
    [h.blockOff, 64],
    [h.recordOff, h.recordBytes],
    [h.usedOff, queue.size * 8],
  ];
}
