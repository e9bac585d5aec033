import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PSN_MASK, isPsn, psnAdd, psnCompare, psnDiff, psnDistance, psnInRange } from '../../../src/nic/roce/psn.js';

const psn = fc.nat({ max: PSN_MASK });

describe('24-bit PSN arithmetic', () => {
  it('wraps at 2^24', () => {
    assert.equal(psnAdd(0xfffffe, 3), 1);
    assert.equal(psnAdd(1, -3), 0xfffffe);
    assert.equal(psnDistance(0xfffffe, 1), 3);
    assert.equal(psnDiff(1, 0xfffffe), 3);
    assert.equal(psnCompare(1, 0xfffffe), 1);
    assert.equal(psnCompare(0xfffffe, 1), -1);
    assert.equal(psnCompare(5, 5), 0);
    assert.ok(psnInRange(0, 0xffffff, 2));
    assert.ok(!psnInRange(1, 0xffffff, 2));
  });

  it('orders PSNs within half the space either way round the wrap', () => {
    fc.assert(
      fc.property(psn, fc.integer({ min: -0x7fffff, max: 0x7fffff }), (a, d) => {
        const b = psnAdd(a, d);
        assert.ok(isPsn(b));
        assert.equal(psnDiff(b, a), d);
        assert.equal(psnCompare(b, a), Math.sign(d));
        assert.equal(psnCompare(a, b), -Math.sign(d) || 0);
        assert.equal(psnDistance(a, b), d & PSN_MASK);
        assert.equal(psnAdd(a, psnDistance(a, b)), b);
      }),
    );
  });

  it('at exactly half the space apart, the difference is -2^23 both ways', () => {
    assert.equal(psnDiff(0x800000, 0), -0x800000);
    assert.equal(psnDiff(0, 0x800000), -0x800000);
  });

  it('isPsn accepts exactly the integers in [0, 2^24)', () => {
    for (const v of [0, 1, PSN_MASK]) assert.ok(isPsn(v));
    for (const v of [-1, PSN_MASK + 1, 1.5, NaN]) assert.ok(!isPsn(v));
  });
});
