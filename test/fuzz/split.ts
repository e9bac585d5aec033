// Fuzz target for the split virtqueue's device side: adversarial rings (split-rings.ts) popped and
// pushed through SplitQueue with the Wasm kernels, and every few rings with the TypeScript twin as
// well. Violations: an exception that is not a VirtioError (a Wasm trap included), a byte changed
// outside the guest regions other than the queue's own arena blocks, a Wasm/twin disagreement.
import { DescriptorChain } from '../../src/virtio/chain.js';
import { VirtioError } from '../../src/virtio/errors.js';
import { SplitQueue, type SplitQueueState } from '../../src/virtio/split-queue.js';
import type { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { instantiateKernels, type KernelExports } from '../../src/wasm/loader.js';
import { statusName } from '../../src/wasm/status.js';
import { buildHostileRing, hostileMemory, prng, type Rng } from './split-rings.js';

export interface FuzzResult {
  iterations: number;
  /** VirtioError counts by status name (the expected way for a hostile ring to end). */
  errors: Record<string, number>;
  violations: string[];
}

const MAX_VIOLATIONS = 50;
/** Compare everything outside the guest regions every this many rings (and at the end). */
const FULL_CHECK_EVERY = 256;
/** Run the twin beside the Wasm kernels on every this-many-th ring. */
const TWIN_EVERY = 8;
const CANARY = 0xa5;

/** What one engine did with one ring, for comparing Wasm and twin. */
interface Trace {
  steps: string[];
  block: string;
  usedRing: string;
}

/** Drive a queue through pops, used pushes and notification calls chosen by `rng`. */
function drive(dm: DeviceMemory, queue: SplitQueue, state: SplitQueueState, rng: Rng, writePayload: boolean): string[] {
  const steps: string[] = [];
  const rounds = 1 + (rng() % 3);
  for (let r = 0; r < rounds; r++) {
    const chains = queue.pop(1 + (rng() % (state.size + 1)));
    steps.push(`pop ${chains.length} ${recordsHex(dm, chains)}`);
    for (const chain of chains) {
      if (rng() % 4 === 0) continue; // held back: completes later or never
      let written = chain.writeBytes === 0 ? 0 : rng() % (chain.writeBytes + 1);
      if (writePayload && written > 0) written = chain.writer(dm.guest.bytes).write(new Uint8Array(written).fill(r + 1));
      queue.addUsed(chain, written);
    }
    steps.push(`flush ${queue.flush()}`);
    if (rng() % 2 === 0) steps.push(`enable ${queue.enableNotification()}`);
    else queue.disableNotification();
    // The guest offers more: random heads, idx moved by a random amount.
    if (rng() % 2 === 0) {
      const avail = state.availGpa;
      const idx = dm.guest.readU16(gpa(avail + 2));
      const more = rng() % (state.size + 2);
      for (let i = 0; i < more; i++) dm.guest.writeU16(gpa(avail + 4 + 2 * ((idx + i) & (state.size - 1))), rng() % (state.size + 1));
      dm.guest.writeU16(gpa(avail + 2), (idx + more) & 0xffff);
    }
  }
  return steps;
}

function recordsHex(dm: DeviceMemory, chains: DescriptorChain[]): string {
  if (chains.length === 0) return '';
  const last = chains[chains.length - 1];
  return Buffer.from(dm.guest.bytes.subarray(chains[0].recordOff, last.recordOff + last.recordBytes)).toString('hex');
}

function runEngine(dm: DeviceMemory, state: SplitQueueState, engine: 'wasm' | 'ts', exports: KernelExports, seed: number, writePayload: boolean, errors: Record<string, number>): Trace {
  const rng = prng(seed);
  const steps: string[] = [];
  let queue: SplitQueue | undefined;
  try {
    queue = SplitQueue.fromState(dm, { ...state }, engine, exports);
    steps.push(...drive(dm, queue, state, rng, writePayload));
  } catch (err) {
    if (!(err instanceof VirtioError)) throw err;
    errors[statusName(err.status)] = (errors[statusName(err.status)] ?? 0) + 1;
    steps.push(`error ${statusName(err.status)} broken=${queue?.broken}`);
  }
  const block = queue ? Buffer.from(dm.guest.bytes.subarray(queue.placement().blockOff, queue.placement().blockOff + 32)).toString('hex') : '';
  const usedOff = dm.guest.translate(gpa(state.usedGpa), 6 + 8 * state.size);
  const usedRing = Buffer.from(dm.guest.bytes.subarray(usedOff, usedOff + 6 + 8 * state.size)).toString('hex');
  if (queue) {
    const p = queue.placement();
    queue.dispose();
    // The queue's own blocks may change: put the canary back.
    dm.guest.bytes.fill(CANARY, p.blockOff, p.blockOff + 64);
    dm.guest.bytes.fill(CANARY, p.recordOff, p.recordOff + p.recordBytes);
    dm.guest.bytes.fill(CANARY, p.usedBufOff, p.usedBufOff + 8 * state.size);
  }
  return { steps, block, usedRing };
}

/**
 * Build the ring of `ringSeed`, drive it with the ops of `opsSeed` through the Wasm kernels, put
 * the guest's rings back, drive it again through the twin. Returns null if both did exactly the
 * same (results, chain records, used ring, queue block), else a description of the difference.
 */
export function compareEngines(dm: DeviceMemory, exports: KernelExports, ringSeed: number, opsSeed: number, errors: Record<string, number> = {}): string | null {
  const state = buildHostileRing(dm, prng(ringSeed));
  // The guest side the device may touch: the used ring, and the avail ring drive() extends.
  const usedOff = dm.guest.translate(gpa(state.usedGpa), 6 + 8 * state.size);
  const availOff = dm.guest.translate(gpa(state.availGpa), 6 + 2 * state.size);
  const usedBefore = Buffer.from(dm.guest.bytes.subarray(usedOff, usedOff + 6 + 8 * state.size));
  const availBefore = Buffer.from(dm.guest.bytes.subarray(availOff, availOff + 6 + 2 * state.size));
  const w = JSON.stringify(runEngine(dm, state, 'wasm', exports, opsSeed, false, errors));
  dm.guest.bytes.set(usedBefore, usedOff);
  dm.guest.bytes.set(availBefore, availOff);
  const t = JSON.stringify(runEngine(dm, state, 'ts', exports, opsSeed, false, {}));
  return w === t ? null : `Wasm and twin disagree:\n  wasm ${w}\n  twin ${t}`;
}

/** Run `iterations` adversarial rings; deterministic for a given seed. */
export function fuzzSplit(iterations: number, seed: number): FuzzResult {
  const dm = hostileMemory();
  const exports = instantiateKernels(dm.memory);
  const errors: Record<string, number> = {};
  const violations: string[] = [];
  const violate = (msg: string) => {
    if (violations.length < MAX_VIOLATIONS) violations.push(msg);
  };
  // Everything below the RAM window that the kernels have no business writing gets a canary:
  // the free arena and the padding up to the RAM window. (The region table and the kernels'
  // static data keep their contents; the snapshot covers them too.)
  const ramBase = dm.layout.ramBase;
  const arenaEnd = dm.layout.arenaOff + dm.layout.arenaBytes;
  dm.guest.bytes.fill(CANARY, dm.layout.arenaOff, ramBase);
  const snapshot = Buffer.from(dm.guest.bytes.subarray(0, ramBase));
  const outside = Buffer.from(dm.memory.buffer as SharedArrayBuffer, 0, ramBase);
  const arenaView = Buffer.from(dm.memory.buffer as SharedArrayBuffer, dm.layout.arenaOff, arenaEnd - dm.layout.arenaOff);
  const arenaSnap = snapshot.subarray(dm.layout.arenaOff, arenaEnd);
  let lastFull = 0;
  const fullCheck = (i: number) => {
    if (!outside.equals(snapshot)) {
      let at = 0;
      while (outside[at] === snapshot[at]) at++;
      violate(`ring ${lastFull}..${i}: memory outside the guest regions changed at offset ${at}`);
      snapshot.copy(outside);
    }
    lastFull = i;
  };

  const master = prng(seed);
  for (let i = 0; i < iterations; i++) {
    const ringSeed = master();
    const opsSeed = master();
    const withTwin = i % TWIN_EVERY === 0;
    try {
      if (withTwin) {
        const diff = compareEngines(dm, exports, ringSeed, opsSeed, errors);
        if (diff !== null) violate(`ring ${i} (seed ${ringSeed}/${opsSeed}): ${diff}`);
      } else {
        runEngine(dm, buildHostileRing(dm, prng(ringSeed)), 'wasm', exports, opsSeed, true, errors);
      }
    } catch (err) {
      const kind = err instanceof WebAssembly.RuntimeError ? 'Wasm trap' : 'exception';
      violate(`ring ${i} (seed ${ringSeed}/${opsSeed}): ${kind}: ${(err as Error)?.stack ?? String(err)}`);
    }
    // Cheap check every ring (the arena, where the queue's buffers sit); full check periodically.
    if (!arenaView.equals(arenaSnap)) fullCheck(i);
    else if ((i + 1) % FULL_CHECK_EVERY === 0) fullCheck(i);
  }
  fullCheck(iterations);
  return { iterations, errors, violations };
}
