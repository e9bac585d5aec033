// Packed virtqueue, device side: pop + walk + push, Wasm kernels against their TypeScript twin.
//
// The guest driver library (src/guest/packed-ring.ts) lays out the first lap of the ring: chains
// of 1, 2, 4 or 16 descriptors (half readable, half writable), or single-slot indirect chains of
// 4 table entries. Later laps replay that lap: one memcpy of the ring image with the AVAIL/USED
// bits flipped for the other wrap counter, so the driver side costs almost nothing and the timed
// loop is the device's work: one packedPop of the whole lap (availability, chain walk, region
// translation, records), a walk over the records (header, segment lengths, used elements), one
// packedPushUsed (used descriptors, wrap counter, event suppression check).
// One operation is one buffer descriptor (indirect: one table entry).
import { PackedDriver } from '../src/guest/packed-ring.js';
import { Arena } from '../src/memory/arena.js';
import { DeviceMemory } from '../src/memory/device-memory.js';
import { type PackedKernels, packedKernels } from '../src/virtio/packed-kernels.js';
import { PackedQueue } from '../src/virtio/packed-queue.js';
import type { KernelEngine } from '../src/virtio/queue.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const MiB = 1024 * 1024;
const DATA_GPA = 2 * MiB;

interface Variant {
  name: string;
  /** Descriptors per chain. */
  chainLen: number;
  indirect: boolean;
}

const VARIANTS: Variant[] = [
  { name: '1 desc', chainLen: 1, indirect: false },
  { name: '2 desc', chainLen: 2, indirect: false },
  { name: '4 desc', chainLen: 4, indirect: false },
  { name: '16 desc', chainLen: 16, indirect: false },
  { name: 'indirect 4', chainLen: 4, indirect: true },
];

function lapTask(dm: DeviceMemory, kernels: PackedKernels, engine: KernelEngine, size: number, v: Variant): BenchTask {
  const driver = new PackedDriver(dm.guest, new Arena(0, 2 * MiB), { size, indirect: v.indirect });
  const queue = PackedQueue.fromState(dm, driver.deviceState(), engine, kernels);
  const chains = v.indirect ? size : size / v.chainLen;
  for (let c = 0; c < chains; c++) {
    const elems = Array.from({ length: v.chainLen }, (_, i) => ({ gpa: DATA_GPA + ((c * v.chainLen + i) % 4096) * 256, len: 256 }));
    const readable = v.chainLen === 1 ? elems : elems.slice(0, v.chainLen / 2);
    const writable = v.chainLen === 1 ? [] : elems.slice(v.chainLen / 2);
    if (driver.add(readable, writable, v.indirect) === null) throw new Error('bench ring full too early');
  }
  const ringOff = dm.guest.translate(driver.descGpa, size * 16);
  const bytes = new Uint8Array(dm.memory.buffer);
  // Lap images for both wrap counter values: AVAIL/USED flipped in every ring descriptor.
  const images = [bytes.slice(ringOff, ringOff + size * 16), bytes.slice(ringOff, ringOff + size * 16)];
  const flipped = new DataView(images[1].buffer);
  for (let s = 0; s < size; s++) flipped.setUint16(s * 16 + 14, flipped.getUint16(s * 16 + 14, true) ^ 0x8080, true);

  const { blockOff, recordOff, recordBytes, usedOff } = queue.handle();
  const u16 = new Uint16Array(dm.memory.buffer);
  const u32 = new Uint32Array(dm.memory.buffer);
  let lap = 0;
  const descriptors = v.indirect ? size * v.chainLen : size;
  const fn = () => {
    bytes.set(images[lap++ & 1], ringOff);
    let lapBytes = 0;
    // The record buffer may hold less than a lap (long chains): pop, walk and push in batches.
    for (let popped = 0; popped < chains; ) {
      const n = kernels.packedPop(blockOff, recordOff, recordBytes, size);
      if (n <= 0) throw new Error(`pop returned ${n} after ${popped} of ${chains} chains`);
      let rec = recordOff;
      let used = usedOff;
      for (let i = 0; i < n; i++) {
        const h = rec >>> 1;
        const segs = u16[h + 2] + u16[h + 3];
        for (let s = 0; s < segs; s++) lapBytes += u32[((rec + 16 + s * 16) >>> 2) + 1];
        u16[used >>> 1] = u16[h];
        u16[(used >>> 1) + 1] = u16[h + 1];
        u32[(used >>> 2) + 1] = u32[(rec + 12) >>> 2];
        used += 8;
        rec += 16 + segs * 16;
      }
      if (kernels.packedPushUsed(blockOff, usedOff, n) < 0) throw new Error('push failed');
      popped += n;
    }
    if (lapBytes !== descriptors * 256) throw new Error(`walked ${lapBytes} bytes, expected ${descriptors * 256}`);
  };
  return {
    name: `size ${size}, ${v.name}`,
    engine,
    unit: 'descriptor',
    opsPerCall: descriptors,
    fn,
    extra: { queueSize: size, chainLen: v.chainLen, indirect: v.indirect },
  };
}

export default async function (): Promise<BenchRow[]> {
  const tasks: BenchTask[] = [];
  for (const size of [256, 1024]) {
    for (const v of VARIANTS) {
      for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
        const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
        dm.addRegion(0, 4 * MiB);
        tasks.push(lapTask(dm, packedKernels(engine, dm.memory), engine, size, v));
      }
    }
  }
  return withRatios(await runTasks('virtqueue-packed', tasks, 400));
}
