import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import { buildFrame, ipv4Checksum, parseFrame, socketContext } from '../../../src/nic/roce/frame.js';
import { pcapHeader, pcapRecord, readPcap, writePcap } from '../../../src/nic/roce/pcap.js';
import { fixtureBytes } from './fixtures.js';

const isBadCapture = (e: unknown) => e instanceof RoceError && e.code === RoceErrorCode.BadCapture;

describe('pcap', () => {
  it('writes what it reads, to the microsecond', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ us: fc.bigInt({ min: 0n, max: 2n ** 42n }), data: fc.uint8Array({ maxLength: 100 }) }), { maxLength: 10 }), (recs) => {
        const records = recs.map((r) => ({ timeNs: r.us * 1000n, data: r.data }));
        const back = readPcap(writePcap(records));
        assert.deepEqual(back.map((r) => [r.timeNs, r.data, r.wireBytes]), records.map((r) => [r.timeNs, r.data, r.data.length]));
      }),
    );
  });

  it('reads the vector files, and a big-endian nanosecond file', () => {
    assert.equal(readPcap(fixtureBytes('linux-rxe-send-4099.pcap')).length, 60);
    const be = new Uint8Array(24 + 16 + 3);
    const v = new DataView(be.buffer);
    v.setUint32(0, 0xa1b23c4d);
    v.setUint32(20, 1);
    v.setUint32(24, 7);
    v.setUint32(28, 5);
    v.setUint32(32, 3);
    v.setUint32(36, 3);
    const [r] = readPcap(be);
    assert.equal(r.timeNs, 7_000_000_005n);
    assert.equal(r.data.length, 3);
  });

  it('cuts records to the snap length and keeps the wire length', () => {
    const file = writePcap([{ timeNs: 0n, data: new Uint8Array(100) }], 60);
    const [r] = readPcap(file);
    assert.equal(r.data.length, 60);
    assert.equal(r.wireBytes, 100);
  });

  it('refuses malformed files with BAD_CAPTURE', () => {
    const good = writePcap([{ timeNs: 1n, data: new Uint8Array(10) }]);
    assert.throws(() => readPcap(good.subarray(0, 20)), isBadCapture);
    assert.throws(() => readPcap(good.subarray(0, good.length - 1)), isBadCapture);
    assert.throws(() => readPcap(good.subarray(0, 30)), isBadCapture);
    const notEth = good.slice();
    notEth[20] = 101;
    assert.throws(() => readPcap(notEth), isBadCapture);
    const junk = good.slice();
    junk[0] = 0;
    assert.throws(() => readPcap(junk), isBadCapture);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (tail) => {
        const file = new Uint8Array(24 + tail.length);
        file.set(pcapHeader());
        file.set(tail, 24);
        try {
          readPcap(file);
        } catch (e) {
          assert.ok(isBadCapture(e));
        }
      }),
    );
    assert.equal(pcapRecord(new Uint8Array(4), 1_500_000_000n).length, 20);
  });
});

describe('Ethernet/IPv4/UDP frames', () => {
  it('builds frames that parse back to their context, with a valid IPv4 checksum', () => {
    const ctx = socketContext(0x7f000105, 0x7f000002, 49999);
    const packet = Uint8Array.from({ length: 24 }, (_, i) => i);
    const frame = buildFrame({ ctx }, packet);
    const info = parseFrame(frame);
    assert.ok(!(info instanceof RoceError));
    assert.deepEqual(info.ctx, ctx);
    assert.equal(info.ttl, 64);
    assert.deepEqual(frame.subarray(info.bthOff, info.bthOff + info.bthLen), packet);
    assert.equal(ipv4Checksum(frame, 14), (frame[24] << 8) | frame[25]);
  });

  it('refuses what is not RoCE v2 over IPv4, never throwing', () => {
    const frame = buildFrame({ ctx: socketContext(1, 2, 3) }, new Uint8Array(16));
    const mutate = (at: number, value: number) => {
      const f = frame.slice();
      f[at] = value;
      const r = parseFrame(f);
      assert.ok(r instanceof RoceError && r.code === RoceErrorCode.BadFrame);
    };
    mutate(12, 0x86); // ethertype
    mutate(14, 0x46); // IPv4 options
    mutate(23, 6); // TCP
    mutate(37, 0xb8); // UDP port 4792
    mutate(21, 1); // fragment offset
    mutate(39, 0); // UDP length
    assert.ok(parseFrame(frame.subarray(0, 40)) instanceof RoceError);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      const r = parseFrame(b);
      if (!(r instanceof RoceError)) assert.ok(r.bthOff + r.bthLen <= b.length);
    }));
  });
});
