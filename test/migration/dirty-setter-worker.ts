// Worker for the dirty-log concurrency test: sets each page bit it is given, once, with
// Atomics.or (alternating byte-wide and 32-bit-wide ORs, as different writers would), in phases.
// After each phase it waits until the main thread has finished a harvest that began after the
// phase's first bit was set, so harvests provably interleave with the setting.
import { isMainThread, workerData } from 'node:worker_threads';

export interface SetterData {
  memory: WebAssembly.Memory;
  bitmapOff: number;
  /** Page numbers to set, each once, in this order. */
  pages: Uint32Array;
  phases: number;
  /** Shared Int32Array words: 0 phase the worker is in (done = phases), 1 harvests completed. */
  control: Int32Array;
}

if (!isMainThread) setBits(workerData as SetterData);

function setBits({ memory, bitmapOff, pages, phases, control }: SetterData): void {
  const bytes = new Uint8Array(memory.buffer);
  const words = new Int32Array(memory.buffer);
  const per = Math.ceil(pages.length / phases);
  for (let phase = 0; phase < phases; phase++) {
    const harvestsBefore = Atomics.load(control, 1);
    Atomics.store(control, 0, phase);
    for (let i = phase * per; i < Math.min(pages.length, (phase + 1) * per); i++) {
      const p = pages[i];
      if (i & 1) Atomics.or(bytes, bitmapOff + (p >>> 3), 1 << (p & 7));
      else Atomics.or(words, (bitmapOff >>> 2) + (p >>> 5), 1 << (p & 31));
    }
    // A harvest that started before this phase may have missed its bits; wait for one more to end
    // after that (two completions past the count seen at the phase's start).
    while (Atomics.load(control, 1) < harvestsBefore + 2) Atomics.wait(control, 1, Atomics.load(control, 1), 50);
  }
  Atomics.store(control, 0, phases);
}
