// Native baselines (DESIGN.md "Wasm kernels": "plus a native C build of the same loop where the
// addon is present"): CRC-32 in C beside node:zlib's crc32, and the region-table lookup in C beside
// its TypeScript twin and the Wasm kernel, all over the same shared memory in one run.
//
// The native rows come in two forms: one JS->C call per operation (what a caller pays today) and
// one call for many operations (crc32Loop, regionLookupBatch), which amortises the call cost and
// shows the C loop itself. Without the addon only the JS/Wasm rows run, and the reason is printed.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { DeviceMemory } from '../src/memory/index.js';
import { nativeStatus } from '../src/native/addon.js';
import { instantiateKernels } from '../src/wasm/loader.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const MiB = 1024 * 1024;
/** Bytes a crc32Loop call covers, so every buffer size amortises the call alike. */
const LOOP_BYTES = 64 * 1024;
const LOOKUPS = 1024;

function crcTasks(): BenchTask[] {
  const status = nativeStatus();
  const tasks: BenchTask[] = [];
  for (const size of [64, 1024, 4096]) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 131 + 17) & 0xff;
    const name = `crc32 ${size} B`;
    let sink = 0;
    tasks.push({ name, engine: 'zlib', unit: 'byte', opsPerCall: size, fn: () => void (sink ^= zlibCrc32(data)) });
    if (status.available) {
      const native = status.addon;
      const iterations = LOOP_BYTES / size;
      tasks.push({ name, engine: 'native', unit: 'byte', opsPerCall: size, fn: () => void (sink ^= native.crc32(data, 0, size)) });
      tasks.push({
        name,
        engine: 'native-loop',
        unit: 'byte',
        opsPerCall: size * iterations,
        fn: () => void (sink ^= native.crc32Loop(data, 0, size, iterations)),
        extra: { passesPerCall: iterations },
      });
    }
    void sink;
  }
  return tasks;
}

function regionTasks(): BenchTask[] {
  // 16 regions of 2 MiB spread over 64 GiB of guest-physical space, like a VM with holes.
  const dm = DeviceMemory.create({ ramBytes: 40 * MiB, arenaBytes: 1 * MiB });
  for (let i = 0; i < 16; i++) dm.addRegion(i * 4 * 1024 * MiB, 2 * MiB);
  const tableOff = dm.layout.regionTableOff;
  const table = dm.guest.regions;
  const wasm = instantiateKernels(dm.memory).regionTranslate as (t: number, g: number, l: number) => number;
  // Mostly hits, some misses, at random: the lookup a datapath does per segment.
  let seed = 12345;
  const rand = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const gpas = Float64Array.from({ length: LOOKUPS }, () => Math.floor(rand() * 16) * 4 * 1024 * MiB + Math.floor(rand() * 2.2 * MiB));
  const lens = Float64Array.from({ length: LOOKUPS }, () => 64 + Math.floor(rand() * 4096));
  const out = new Float64Array(LOOKUPS);
  const name = 'region lookup (16 regions)';
  let sink = 0;
  const tasks: BenchTask[] = [
    { name, engine: 'ts', unit: 'lookup', opsPerCall: LOOKUPS, fn: () => { for (let i = 0; i < LOOKUPS; i++) sink += table.lookup(gpas[i], lens[i]); } },
    { name, engine: 'wasm', unit: 'lookup', opsPerCall: LOOKUPS, fn: () => { for (let i = 0; i < LOOKUPS; i++) sink += wasm(tableOff, gpas[i], lens[i]); } },
  ];
  const status = nativeStatus();
  if (status.available) {
    const native = status.addon;
    const memory = new Uint8Array(dm.memory.buffer);
    tasks.push(
      { name, engine: 'native', unit: 'lookup', opsPerCall: LOOKUPS, fn: () => { for (let i = 0; i < LOOKUPS; i++) sink += native.regionLookup(memory, tableOff, gpas[i], lens[i]); } },
      { name, engine: 'native-batch', unit: 'lookup', opsPerCall: LOOKUPS, fn: () => void (sink += native.regionLookupBatch(memory, tableOff, gpas, lens, out)) },
    );
  }
  void sink;
  return tasks;
}

export default async function nativeBaselines(): Promise<BenchRow[]> {
  const status = nativeStatus();
  if (!status.available) console.error(`native baselines: ${status.reason}; running the JS and Wasm rows only`);
  const crc = withRatios(await runTasks('native', crcTasks()), 'zlib').map((r) => ({ ...r, gbPerSec: Number((r.opsPerSec / 1e9).toFixed(3)) }));
  const region = withRatios(await runTasks('native', regionTasks()), 'ts');
  return [...crc, ...region];
}
