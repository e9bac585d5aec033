// Fuzz target: adversarial packed rings (test/virtio/packed-adversary.ts) against the Wasm
// kernels, and every 16th ring against the TypeScript twin as well. A violation is anything a
// hostile guest must never cause: an exception other than VirtioError (a Wasm trap included), a
// byte changed outside the guest's regions other than the queue's own arena blocks, or the two
// engines disagreeing. One device memory is reused throughout; canaries are compared in full
// every 256 rings and at the end, which is cheap and still catches any stray write.
import { packedKernels } from '../../src/virtio/packed-kernels.js';
import { VirtioError } from '../../src/virtio/errors.js';
import { type ScenarioResult, runScenario } from '../virtio/packed-adversary.js';
import { type Rig, makeRig, plantCanaries, queueRanges, regionRanges } from '../virtio/packed-fixture.js';

export interface FuzzReport {
  iterations: number;
  /** Ring statuses the device raised, by name ("OUT_OF_RANGE": 1234); "ok" counts clean rings. */
  errors: Record<string, number>;
  violations: string[];
}

const COMPARE_EVERY = 16;
const CANARY_EVERY = 256;
/** The queue's arena blocks come first in the arena; this much of it is compared between engines. */
const ARENA_HEAD_BYTES = 64 * 1024;
const MAX_VIOLATIONS = 50;

/** The bytes both engines may legitimately change, as one list of [offset, bytes] spans. */
function comparedSpans(rig: Rig): Array<[number, number]> {
  return [...regionRanges(rig).map(([o, n]) => [o, n] as [number, number]), [rig.dm.layout.arenaOff, ARENA_HEAD_BYTES]];
}

function sameBytes(a: Rig, b: Rig): string | null {
  const x = new Uint8Array(a.dm.memory.buffer);
  const y = new Uint8Array(b.dm.memory.buffer);
  for (const [off, n] of comparedSpans(a)) {
    if (Buffer.compare(x.subarray(off, off + n), y.subarray(off, off + n)) !== 0) {
      let i = off;
      while (x[i] === y[i]) i++;
      return `memory differs at offset ${i}: wasm ${x[i]}, ts ${y[i]}`;
    }
  }
  return null;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

export function fuzzPacked(iterations: number, seed: number): FuzzReport {
  const rig = makeRig();
  const twinRig = makeRig();
  const wasm = packedKernels('wasm', rig.dm.memory);
  const twin = packedKernels('ts', twinRig.dm.memory);
  const canaries = plantCanaries(rig, regionRanges(rig));
  const errors: Record<string, number> = {};
  const violations: string[] = [];
  const violate = (msg: string) => {
    if (violations.length < MAX_VIOLATIONS) violations.push(msg);
  };
  let lastCanaryCheck = 0;
  const checkCanaries = (i: number) => {
    const bad = canaries.check();
    if (bad.length > 0) {
      violate(`rings ${lastCanaryCheck}..${i}: ${bad.join('; ')}`);
      canaries.replantAll();
    }
    lastCanaryCheck = i + 1;
  };

  for (let i = 0; i < iterations; i++) {
    const ringSeed = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(i, 0x85ebca6b)) >>> 0 || 1;
    const compare = i % COMPARE_EVERY === 0;
    if (compare) {
      // Same starting bytes for the twin: the guest regions and the head of the arena.
      const from = new Uint8Array(rig.dm.memory.buffer);
      const to = new Uint8Array(twinRig.dm.memory.buffer);
      for (const [off, n] of comparedSpans(rig)) to.set(from.subarray(off, off + n), off);
    }
    let result: ScenarioResult;
    try {
      result = runScenario(rig, ringSeed, 'wasm', wasm);
    } catch (e) {
      violate(`ring ${i} (seed ${ringSeed}) [wasm]: ${e instanceof VirtioError ? 'escaped ' : ''}${describe(e)}`);
      continue;
    }
    if (result.errors.length === 0) errors.ok = (errors.ok ?? 0) + 1;
    for (const name of result.errors) errors[name] = (errors[name] ?? 0) + 1;

    if (compare) {
      try {
        const other = runScenario(twinRig, ringSeed, 'ts', twin);
        const a = JSON.stringify([result.trace, result.errors, result.queue.state()]);
        const b = JSON.stringify([other.trace, other.errors, other.queue.state()]);
        if (a !== b) violate(`ring ${i} (seed ${ringSeed}): wasm and twin disagree: ${a} vs ${b}`);
        else {
          const diff = sameBytes(rig, twinRig);
          if (diff !== null) violate(`ring ${i} (seed ${ringSeed}): ${diff}`);
        }
        other.queue.dispose();
        other.driver.dispose();
      } catch (e) {
        violate(`ring ${i} (seed ${ringSeed}) [ts]: ${describe(e)}`);
      }
    }

    // The queue's own blocks may change: put the canary back before they return to the arena.
    canaries.replant(queueRanges(result.queue));
    result.queue.dispose();
    result.driver.dispose();
    if ((i + 1) % CANARY_EVERY === 0) checkCanaries(i);
  }
  checkCanaries(iterations - 1);
  return { iterations, errors, violations };
}
