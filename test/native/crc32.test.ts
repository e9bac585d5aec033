import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { withNative } from './with-native.js';

describe('native CRC-32', () => {
  it('equals zlib crc32 on random ranges of random buffers', withNative((native) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const off = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const len = (bytes.length - off) === 0 ? 0 : b % (bytes.length - off + 1);
        assert.equal(native.crc32(bytes, off, len), zlibCrc32(bytes.subarray(off, off + len)));
      }),
      { numRuns: 500 },
    );
  }));

  it('continues a seed as zlib does, and matches the check value', withNative((native) => {
    const check = new TextEncoder().encode('123456789');
    assert.equal(native.crc32(check, 0, 9), 0xcbf43926);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (x, y) => {
        const seed = native.crc32(x, 0, x.length);
        // zlib's oracle gets Buffers: Node 20's crc32 ignores the seed for an empty, bufferless Uint8Array.
        assert.equal(native.crc32(y, 0, y.length, seed), zlibCrc32(Buffer.from(y), zlibCrc32(Buffer.from(x))));
      }),
    );
  }));

  it('reads views at any alignment, of any element type, over a SharedArrayBuffer', withNative((native) => {
    const sab = new SharedArrayBuffer(4096);
    const bytes = new Uint8Array(sab);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) & 0xff;
    for (let start = 0; start < 9; start++) {
      const view = new Uint8Array(sab, start, 1000);
      assert.equal(native.crc32(view, 3, 900), zlibCrc32(Buffer.from(bytes.slice(start + 3, start + 903))));
    }
    const words = new Uint32Array(sab, 8, 16);
    assert.equal(native.crc32(words, 0, 64), zlibCrc32(Buffer.from(bytes.slice(8, 72))));
    const dv = new DataView(sab, 100, 50);
    assert.equal(native.crc32(dv, 10, 40), zlibCrc32(Buffer.from(bytes.slice(110, 150))));
  }));

  it('crc32Loop is the CRC of the range repeated', withNative((native) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 20 }), (bytes, n) => {
        const repeated = Buffer.concat(Array.from({ length: n }, () => bytes));
        assert.equal(native.crc32Loop(bytes, 0, bytes.length, n), zlibCrc32(repeated));
      }),
    );
  }));

  it('refuses ranges outside the view and non-integer arguments', withNative((native) => {
    const buf = new Uint8Array(16);
    assert.throws(() => native.crc32(buf, 10, 7), RangeError);
    assert.throws(() => native.crc32(buf, 17, 0), RangeError);
    assert.throws(() => native.crc32(buf, -1, 1), RangeError);
    assert.throws(() => native.crc32(buf, 0.5, 1), RangeError);
    assert.throws(() => native.crc32Loop(buf, 0, 16, -1), RangeError);
    assert.throws(() => native.crc32([1, 2] as unknown as Uint8Array, 0, 1), TypeError);
    assert.equal(native.crc32(buf, 16, 0), 0);
  }));
});
