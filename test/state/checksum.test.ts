// The state checksum (docs/state-format.md, "Header"): zlib's CRC-32 over the buffer with the
// checksum field as zeros, whichever implementation computes it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32Raw } from '../../src/nic/roce/crc32.js';
import { stateChecksum } from '../../src/state/header.js';

/** The definition, spelled out with the table-driven CRC-32. */
function reference(buf: Uint8Array): number {
  const zeroed = buf.slice();
  zeroed.fill(0, 28, 32);
  return ~crc32Raw(~0, zeroed, 0, zeroed.length) >>> 0;
}

describe('state checksum', () => {
  it('is the CRC-32 of the buffer with its checksum field zeroed', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 5000 }), (buf) => {
      assert.equal(stateChecksum(buf), reference(buf));
    }));
  });

  it('ignores what the checksum field holds and sees every other byte', () => {
    const buf = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
    const sum = stateChecksum(buf);
    buf.fill(0xaa, 28, 32);
    assert.equal(stateChecksum(buf), sum);
    buf[4000] ^= 1;
    assert.notEqual(stateChecksum(buf), sum);
  });
});
