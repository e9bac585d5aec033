import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzPacked } from './packed.js';

describe('packed ring fuzz target (short pass; npm run fuzz runs a million rings)', () => {
  it('2,000 adversarial rings: no trap, no stray write, Wasm and twin agree', () => {
    const seed = Date.now() >>> 0;
    const report = fuzzPacked(2000, seed);
    assert.deepEqual(report.violations, [], `seed ${seed}`);
    assert.equal(report.iterations, 2000);
    assert.ok((report.errors.ok ?? 0) > 0 && Object.keys(report.errors).length > 3, JSON.stringify(report.errors));
  });
});
