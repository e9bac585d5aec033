// The packet ring between a device's socket side and its backend: datagrams come out in order
// with their addresses, across the wrap (skip markers); a full ring drops and counts; a batch
// limit is kept; a successor consumer carries on where the last one stopped; a corrupted record
// empties the ring instead of being parsed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PacketRing } from '../../src/backend/packet-ring.js';

const dgram = (seed: number, len: number) => Uint8Array.from({ length: len }, (_, i) => (seed * 31 + i) & 0xff);

function drain(ring: PacketRing, max = Infinity): { bytes: Uint8Array; ip: number; port: number }[] {
  const out: { bytes: Uint8Array; ip: number; port: number }[] = [];
  ring.pop((bytes, ip, port) => out.push({ bytes: bytes.slice(), ip, port }), max);
  return out;
}

describe('packet ring', () => {
  it('delivers datagrams in order with their addresses, across many wraps', () => {
    const ring = PacketRing.create(4096);
    let sent = 0;
    let got = 0;
    for (let round = 0; round < 200; round++) {
      for (let k = 0; k < 5; k++, sent++) assert.ok(ring.push(dgram(sent, 1 + ((sent * 97) % 700)), 0x7f000001 + sent, 4791 + (sent % 3)));
      for (const d of drain(ring)) {
        assert.deepEqual(d, { bytes: dgram(got, 1 + ((got * 97) % 700)), ip: (0x7f000001 + got) >>> 0, port: 4791 + (got % 3) });
        got++;
      }
    }
    assert.equal(got, sent);
    assert.equal(ring.pending, 0);
    assert.equal(ring.dropped, 0);
  });

  it('drops and counts what does not fit, and takes more once the consumer frees room', () => {
    const ring = PacketRing.create(4096);
    let pushed = 0;
    while (ring.push(dgram(pushed, 500), 1, 2)) pushed++;
    assert.equal(pushed, 8, '8 records of 512 bytes fill 4096');
    assert.equal(ring.dropped, 1);
    assert.equal(ring.push(new Uint8Array(5000), 1, 2), false, 'larger than the ring');
    assert.equal(ring.dropped, 2);
    assert.equal(drain(ring, 3).length, 3, 'the batch limit');
    assert.ok(ring.push(dgram(99, 500), 1, 2));
    const rest = drain(ring);
    assert.equal(rest.length, 6);
    assert.deepEqual(rest.at(-1)?.bytes, dgram(99, 500));
  });

  it('a second consumer over the same buffer carries on where the first stopped', () => {
    const ring = PacketRing.create(4096);
    for (let i = 0; i < 6; i++) ring.push(dgram(i, 100), i, i);
    assert.equal(drain(ring, 2).length, 2);
    const successor = new PacketRing(ring.buffer);
    assert.deepEqual(drain(successor).map((d) => d.ip), [2, 3, 4, 5]);
  });

  it('a record that does not read back as one empties the ring, and the ring works on', () => {
    const ring = PacketRing.create(4096);
    ring.push(dgram(1, 100), 1, 1);
    ring.push(dgram(2, 100), 2, 2);
    // Corrupt the second record's length to run past what was written.
    new DataView(ring.buffer, 64).setUint32(112 + 0, 3000, true);
    assert.deepEqual(drain(ring).map((d) => d.ip), [1]);
    assert.equal(ring.pending, 0);
    ring.push(dgram(3, 10), 3, 3);
    assert.deepEqual(drain(ring).map((d) => d.ip), [3]);
  });

  it('refuses sizes it cannot hold', () => {
    for (const bad of [0, 100, 4097, 2 ** 30]) assert.throws(() => PacketRing.create(bad), RangeError);
    assert.throws(() => new PacketRing(new SharedArrayBuffer(100)), RangeError);
  });
});
