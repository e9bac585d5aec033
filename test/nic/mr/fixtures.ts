// Shared set-up for the MR tests: a device memory, both engines, and small checks.
import assert from 'node:assert/strict';
import { DeviceMemory, type Gpa, gpa } from '../../../src/memory/index.js';
import { MrTranslator, type MrSegment, type MrTranslation } from '../../../src/nic/mr/index.js';
import type { KernelEngine } from '../../../src/virtio/queue.js';
import { instantiateKernels } from '../../../src/wasm/loader.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const ENGINES: readonly KernelEngine[] = ['wasm', 'ts'];

export function device(ramBytes = 64 * MiB, arenaBytes = 16 * MiB): DeviceMemory {
  return DeviceMemory.create({ ramBytes, arenaBytes });
}

/** A translator per engine over one device. */
export function translators(dm: DeviceMemory, maxSegments = 64): Record<KernelEngine, MrTranslator> {
  const kernels = instantiateKernels(dm.memory);
  return { wasm: MrTranslator.create(dm, 'wasm', maxSegments, kernels), ts: MrTranslator.create(dm, 'ts', maxSegments) };
}

export function segments(result: MrTranslation): MrSegment[] {
  if (!result.ok) assert.fail(`translation failed: ${result.name}`);
  return result.segments;
}

export function failure(result: MrTranslation): string {
  if (result.ok) assert.fail(`translation succeeded with ${result.segments.length} segments`);
  return result.name;
}

export function pages(...addresses: number[]): Gpa[] {
  return addresses.map((a) => gpa(a));
}

/** Copy `data` through a segment list into the shared memory (what the device does for a write). */
export function writeThrough(dm: DeviceMemory, segs: MrSegment[], data: Uint8Array): void {
  let done = 0;
  for (const s of segs) {
    dm.guest.bytes.set(data.subarray(done, done + s.len), s.offset);
    done += s.len;
  }
  assert.equal(done, data.length);
}

/** Gather the bytes a segment list names (what the device does for a read). */
export function readThrough(dm: DeviceMemory, segs: MrSegment[]): Uint8Array {
  const total = segs.reduce((n, s) => n + s.len, 0);
  const out = new Uint8Array(total);
  let done = 0;
  for (const s of segs) {
    out.set(dm.guest.bytes.subarray(s.offset, s.offset + s.len), done);
    done += s.len;
  }
  return out;
}

export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
