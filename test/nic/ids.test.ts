import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { VerbsError, VerbsErrorCode } from '../../src/nic/errors.js';
import { IdAllocator, KeyAllocator } from '../../src/nic/ids.js';

describe('IdAllocator', () => {
  it('never hands out a number in use, across random allocate/reserve/release', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('alloc', 'reserve', 'release'), fc.integer({ min: 2, max: 40 })), { maxLength: 300 }), (ops) => {
        const ids = new IdAllocator('qpn', 2, 40);
        const live = new Set<number>();
        for (const [op, n] of ops) {
          if (op === 'alloc') {
            if (live.size === 39) {
              assert.throws(() => ids.allocate(), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NoResources);
            } else {
              const id = ids.allocate();
              assert.ok(!live.has(id) && id >= 2 && id <= 40);
              live.add(id);
            }
          } else if (op === 'reserve') {
            if (live.has(n)) assert.throws(() => ids.reserve(n), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Exists);
            else live.add(ids.reserve(n));
          } else if (live.has(n)) {
            ids.release(n);
            live.delete(n);
          } else {
            assert.throws(() => ids.release(n), VerbsError);
          }
        }
        assert.equal(ids.size, live.size);
      }),
    );
  });

  it('reuses a freed number as late as possible', () => {
    const ids = new IdAllocator('handle', 1, 4);
    const a = ids.allocate();
    ids.release(a);
    assert.notEqual(ids.allocate(), a);
  });
});

describe('KeyAllocator', () => {
  it('gives a freed index a new tag, so stale keys stop matching', () => {
    const keys = new KeyAllocator(1);
    const first = keys.allocate();
    keys.release(first);
    const second = keys.allocate();
    assert.equal(first >>> 8, second >>> 8);
    assert.notEqual(first, second);
    assert.ok(keys.isLive(second) && !keys.isLive(first));
    assert.throws(() => keys.release(first), VerbsError);
  });

  it('reserves chosen keys and refuses duplicates', () => {
    const keys = new KeyAllocator(100);
    keys.reserve(0x1234);
    assert.ok(keys.isLive(0x1234));
    assert.throws(() => keys.reserve(0x1299), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Exists);
    assert.notEqual(keys.allocate() >>> 8, 0x12);
  });
});
