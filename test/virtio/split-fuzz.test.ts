import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzSplit } from '../fuzz/split.js';

describe('split ring fuzz target', () => {
  it('runs 2,000 adversarial rings without a violation, and they do break rings', () => {
    const result = fuzzSplit(2000, 0x5eed);
    assert.deepEqual(result.violations, []);
    assert.equal(result.iterations, 2000);
    // The corruptions reach the kernels' checks, not just the happy path.
    for (const status of ['LOOP', 'NESTED_INDIRECT', 'BAD_INDIRECT_LEN', 'OUT_OF_RANGE', 'OVERFLOW', 'AVAIL_JUMP', 'BAD_INDEX', 'READ_AFTER_WRITE']) {
      assert.ok((result.errors[status] ?? 0) > 0, `no ring ended in ${status}: ${JSON.stringify(result.errors)}`);
    }
  });

  it('is deterministic for a seed', () => {
    assert.deepEqual(fuzzSplit(200, 42), fuzzSplit(200, 42));
  });
});
