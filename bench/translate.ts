// MR translation: iova -> segment list on a 1 GiB physical MR whose pages are scattered over
// guest memory (a guest userspace buffer, R1), with 4 KiB and 2 MiB pages, random and sequential
// 4 KiB lookups, the Wasm kernel and its TypeScript twin side by side.
import { DeviceMemory, type Gpa, MemoryError, gpa } from '../src/memory/index.js';
import { MR_LOCAL_WRITE, MR_REMOTE_READ, MR_REMOTE_WRITE, type MrTranslateFn, MrTranslator, PageTable, type PageShift } from '../src/nic/mr/index.js';
import type { KernelEngine } from '../src/virtio/queue.js';
import { instantiateKernels } from '../src/wasm/loader.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const MiB = 1024 * 1024;
const LOOKUP_BYTES = 4096;
const BATCH = 1024;
const MR_IOVA = 0x7f12_3400_0000;

/** Deterministic xorshift, so every run measures the same lookups. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function shuffledPages(count: number, pageBytes: number, next: () => number): Gpa[] {
  const pages = Array.from({ length: count }, (_, i) => gpa(i * pageBytes));
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [pages[i], pages[j]] = [pages[j], pages[i]];
  }
  return pages;
}

/** A device with `ramBytes` of guest RAM in one region, or null if it cannot be created. */
function tryDevice(ramBytes: number): DeviceMemory | null {
  try {
    const dm = DeviceMemory.create({ ramBytes, arenaBytes: 16 * MiB });
    dm.addRegion(0, ramBytes);
    return dm;
  } catch (err) {
    if (err instanceof MemoryError || err instanceof RangeError) return null;
    throw err;
  }
}

export default async function translate(): Promise<BenchRow[]> {
  let mrBytes = 1024 * MiB;
  let dm = tryDevice(mrBytes);
  let note = '1 GiB MR';
  if (dm === null) {
    mrBytes = 256 * MiB;
    dm = tryDevice(mrBytes);
    note = 'shrunk to a 256 MiB MR: a 1 GiB device memory could not be created';
    if (dm === null) throw new Error('cannot create a device memory of 256 MiB for the translate bench');
  }
  const kernels = instantiateKernels(dm.memory);
  const next = rng(0x5eed);
  const access = MR_LOCAL_WRITE | MR_REMOTE_WRITE | MR_REMOTE_READ;
  // 64 Ki lookups touch entries all over the 4 KiB-page table (2 MiB of entries), not a warm few.
  const lookups = 65536;
  const randomIovas = Float64Array.from({ length: lookups }, () => MR_IOVA + Math.floor(next() * (mrBytes - LOOKUP_BYTES)));
  const sequentialIovas = Float64Array.from({ length: lookups }, (_, i) => MR_IOVA + ((i * LOOKUP_BYTES) % mrBytes));

  const tasks: BenchTask[] = [];
  const tables: PageTable[] = [];
  for (const pageShift of [12, 21] as PageShift[]) {
    const pageBytes = 2 ** pageShift;
    const table = PageTable.physical(dm, { iova: MR_IOVA, length: mrBytes, access, pageShift, pages: shuffledPages(mrBytes / pageBytes, pageBytes, next) });
    tables.push(table);
    for (const [pattern, iovas] of [['random', randomIovas], ['sequential', sequentialIovas]] as const) {
      for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
        const tr = MrTranslator.create(dm, engine, 8, kernels);
        const fn: MrTranslateFn = tr.fn;
        const handle = table.offset;
        const { outOff, outCap } = tr;
        // Segments per lookup, measured once: the work each lookup really does.
        let segs = 0;
        for (const iova of iovas) segs += tr.raw(handle, iova, LOOKUP_BYTES, MR_REMOTE_WRITE);
        let cursor = 0;
        tasks.push({
          name: `${pattern} 4 KiB lookups, ${pageBytes / 1024} KiB pages`,
          engine,
          unit: 'lookup',
          opsPerCall: BATCH,
          extra: { mrBytes, pageBytes, segmentsPerLookup: Number((segs / lookups).toFixed(3)), note },
          fn: () => {
            let total = 0;
            for (let i = 0; i < BATCH; i++) {
              const n = fn(handle, iovas[(cursor + i) & (lookups - 1)], LOOKUP_BYTES, MR_REMOTE_WRITE, outOff, outCap);
              if (n <= 0) throw new Error(`translation failed with status ${n}`);
              total += n;
            }
            cursor = (cursor + BATCH) & (lookups - 1);
            if (total < BATCH) throw new Error('fewer segments than lookups');
          },
        });
      }
    }
  }
  const rows = withRatios(await runTasks('translate', tasks));
  for (const t of tables) t.dispose();
  return rows;
}
