import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { packedKernels } from '../../src/virtio/packed-kernels.js';
import { runScenario } from './packed-adversary.js';
import { makeRig, plantCanaries, queueRanges, regionRanges } from './packed-fixture.js';

describe('packed ring kernels: Wasm and TypeScript twin', () => {
  it('agree on random, randomly corrupted rings, and never touch memory outside the guest', () => {
    // Two rigs kept in lockstep: every scenario runs on both, then frees what it allocated.
    const rigs = [makeRig(), makeRig()];
    const checks = rigs.map((rig) => plantCanaries(rig, regionRanges(rig)));
    const kernels = [packedKernels('wasm', rigs[0].dm.memory), packedKernels('ts', rigs[1].dm.memory)];
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 32 - 1 }), (seed) => {
        const wasm = runScenario(rigs[0], seed, 'wasm', kernels[0]);
        const twin = runScenario(rigs[1], seed, 'ts', kernels[1]);
        assert.deepEqual(wasm.trace, twin.trace);
        assert.deepEqual(wasm.errors, twin.errors);
        assert.equal(wasm.queue.broken, twin.queue.broken);
        assert.deepEqual(wasm.queue.state(), twin.queue.state());
        // Ring contents, records, queue block: the whole memory past the Wasm data is identical.
        const from = rigs[0].dm.layout.regionTableOff;
        assert.equal(Buffer.compare(new Uint8Array(rigs[0].dm.memory.buffer, from), new Uint8Array(rigs[1].dm.memory.buffer, from)), 0);
        [wasm, twin].forEach((r, i) => {
          assert.deepEqual(checks[i].check(queueRanges(r.queue)), []);
          checks[i].replant(queueRanges(r.queue));
          r.queue.dispose();
          r.driver.dispose();
        });
      }),
      // No shrinking: a seed is the whole counterexample, and the rigs leave lockstep after a failure.
      { numRuns: 1000, endOnFailure: true, includeErrorInReport: true },
    );
  });

  it('the scenario generator reaches every ring status (fixed seeds, so the property above is not vacuous)', () => {
    const rig = makeRig();
    const kernels = packedKernels('wasm', rig.dm.memory);
    const seen = new Set<string>();
    for (let seed = 1; seed <= 3000; seed++) {
      const r = runScenario(rig, seed, 'wasm', kernels);
      for (const e of r.errors) seen.add(e);
      r.queue.dispose();
      r.driver.dispose();
    }
    const want = ['OUT_OF_RANGE', 'OVERFLOW', 'LOOP', 'NESTED_INDIRECT', 'BAD_INDIRECT_LEN', 'AVAIL_JUMP', 'READ_AFTER_WRITE', 'CHAIN_TOO_LONG', 'NO_SPACE'];
    assert.deepEqual(want.filter((s) => !seen.has(s)), []);
  });
});
