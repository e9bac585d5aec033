// The report's arithmetic: nearest-rank percentiles and per-QP blackout from the two sides' instants.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { percentile, summarizeBlackout } from '../../src/migration/report.js';

describe('migration report', () => {
  it('percentile is a sample, never below p% of them or above the rest', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 100 }), (xs, p) => {
        const v = percentile(xs, p)!;
        assert.ok(xs.includes(v));
        assert.ok(xs.filter((x) => x <= v).length >= Math.ceil((p / 100) * xs.length));
        assert.ok(xs.filter((x) => x < v).length < Math.ceil((p / 100) * xs.length));
      }),
      { seed: 8 },
    );
    assert.equal(percentile([], 50), null);
    assert.equal(percentile([5, 1, 3], 50), 3);
    assert.equal(percentile([5, 1, 3], 99), 5);
  });

  it('blackout per QP: first completion minus suspend; a QP with none is null and left out of the percentiles', () => {
    const s = summarizeBlackout(
      [{ qpn: 1, at: 1000 }, { qpn: 2, at: 1000.5 }, { qpn: 3, at: 1001 }],
      [{ qpn: 2, at: 1003 }, { qpn: 1, at: 1001.25 }, { qpn: 3, at: Number.NaN }, { qpn: 9, at: 5000 }],
    );
    assert.deepEqual(s.perQp, [{ qpn: 1, ms: 1.25 }, { qpn: 2, ms: 2.5 }, { qpn: 3, ms: null }]);
    assert.deepEqual([s.p50Ms, s.p99Ms, s.maxMs], [1.25, 2.5, 2.5]);
    assert.deepEqual(summarizeBlackout([{ qpn: 1, at: 0 }], []).p50Ms, null);
  });
});
