// Split virtqueue device side: pop every available chain, walk the chain records, push a used
// element per chain. Wasm kernels against their TypeScript twin on the same rings. The guest
// driver library builds the chains once; in the timed loop the guest re-offers the same chains by
// moving avail idx over a prebuilt avail ring, so the device side dominates. Unit: buffer
// descriptors processed (for the indirect variant, the descriptors in the table).
import { SplitRingDriver, type GuestBuffer } from '../src/guest/split-ring.js';
import { Arena } from '../src/memory/arena.js';
import { DeviceMemory } from '../src/memory/device-memory.js';
import { gpa } from '../src/memory/gpa.js';
import { CHAIN_HEADER_BYTES, SEGMENT_BYTES } from '../src/virtio/chain.js';
import type { KernelEngine } from '../src/virtio/queue.js';
import { wasmSplitKernels, type SplitKernels } from '../src/virtio/split-block.js';
import { SplitQueue } from '../src/virtio/split-queue.js';
import { splitTwin } from '../src/virtio/split-twin.js';
import { instantiateKernels } from '../src/wasm/loader.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const MiB = 1024 * 1024;

interface Shape {
  name: string;
  descs: number;
  indirect: boolean;
}

const SHAPES: Shape[] = [
  { name: '1 desc', descs: 1, indirect: false },
  { name: '2 desc', descs: 2, indirect: false },
  { name: '4 desc', descs: 4, indirect: false },
  { name: '16 desc', descs: 16, indirect: false },
  { name: 'indirect 4', descs: 4, indirect: true },
];

function task(size: number, shape: Shape, engine: KernelEngine): BenchTask {
  const dm = DeviceMemory.create({ ramBytes: 8 * MiB, arenaBytes: 1 * MiB });
  dm.addRegion(0, 8 * MiB);
  const alloc = new Arena(0x1000, 8 * MiB - 0x1000);
  const driver = SplitRingDriver.create<number>(dm.guest, alloc, { size, eventIdx: true, indirectDesc: true });
  const data = alloc.alloc(4096, 64);
  // Readable buffers first, then writable; each 64 bytes, all valid guest memory.
  const bufs: GuestBuffer[] = Array.from({ length: shape.descs }, (_, i) => ({ gpa: data + 64 * i, len: 64 }));
  const reads = shape.descs >> 1;
  const heads: number[] = [];
  for (;;) {
    const head = driver.add(bufs.slice(0, reads), bufs.slice(reads), heads.length, shape.indirect);
    if (head < 0) break;
    heads.push(head);
  }
  const chains = heads.length;
  // Prebuild the whole avail ring: slot j offers heads[j % chains]. The device completes chains
  // in order, so each round the same heads are due again and the refill is one idx store.
  for (let j = chains; j < size; j++) dm.guest.writeU16(gpa(driver.availGpa + 4 + 2 * j), heads[j % chains]);
  const availIdx = dm.guest.slice(gpa(driver.availGpa + 2), 2);
  const idxWord = new Uint16Array(availIdx.buffer, availIdx.byteOffset, 1);
  let idx = 0; // nothing offered yet: each call offers one round
  const queue = SplitQueue.fromState(dm, driver.initialDeviceState(), engine);
  const { blockOff, recordOff, recordBytes, usedBufOff } = queue.placement();
  const k: SplitKernels = engine === 'wasm' ? wasmSplitKernels(instantiateKernels(dm.memory)) : splitTwin(dm.memory);
  const u16 = new Uint16Array(dm.memory.buffer);
  const u32 = new Uint32Array(dm.memory.buffer);
  const fn = () => {
    // The guest re-offers the chains the device just used (idx moves on by a whole round).
    idx = (idx + chains) & 0xffff;
    Atomics.store(idxWord, 0, idx);
    let left = chains;
    while (left > 0) {
      const n = k.splitPop(blockOff, recordOff, recordBytes, left);
      if (n <= 0) throw new Error(`pop returned ${n}`);
      // Walk the records (16-byte aligned): used element {id, writeBytes} per chain.
      let rec = recordOff;
      let e = usedBufOff >>> 2;
      for (let i = 0; i < n; i++) {
        const h = rec >>> 1;
        u32[e] = u16[h];
        u32[e + 1] = u32[(rec + 12) >>> 2];
        e += 2;
        rec += CHAIN_HEADER_BYTES + SEGMENT_BYTES * (u16[h + 2] + u16[h + 3]);
      }
      if (k.splitPushUsed(blockOff, usedBufOff, n) < 0) throw new Error('push failed');
      left -= n;
    }
  };
  return { name: `q${size} ${shape.name}`, engine, unit: 'descriptor', opsPerCall: chains * shape.descs, fn, extra: { queueSize: size, chains } };
}

export default async function (): Promise<BenchRow[]> {
  const tasks: BenchTask[] = [];
  for (const size of [256, 1024]) {
    for (const shape of SHAPES) {
      for (const engine of ['wasm', 'ts'] as KernelEngine[]) tasks.push(task(size, shape, engine));
    }
  }
  return withRatios(await runTasks('virtqueue-split', tasks));
}
