// The byte forms QP shards move work requests and completions in (src/nic/shard/post-codec.ts,
// wc-codec.ts): every work request and completion comes back as it went, and a record cut short
// is refused rather than read past.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeRecvWrs, decodeSendWrs, encodeRecvWr, encodeSendWr } from '../../src/nic/shard/post-codec.js';
import { FieldWriter } from '../../src/state/index.js';
import { WC_RECORD_BYTES, decodeWc, encodeWc } from '../../src/nic/shard/wc-codec.js';
import type { RecvWr, SendWr, WorkCompletion } from '../../src/nic/verbs.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const sge = fc.record({ addr: fc.maxSafeNat(), length: u32, lkey: u32 }, { noNullPrototype: true });
const sendWr: fc.Arbitrary<SendWr> = fc.record({
  wrId: u64, opcode: fc.integer({ min: 0, max: 9 }), flags: fc.integer({ min: 0, max: 15 }), sgList: fc.array(sge, { maxLength: 5 }),
  inline: fc.uint8Array({ maxLength: 70 }), immData: u32, invalidateRkey: u32, remoteAddr: fc.maxSafeNat(), rkey: u32,
  compareAdd: u64, swap: u64, ah: u32, remoteQpn: u32, remoteQkey: u32,
}, { noNullPrototype: true, requiredKeys: ['wrId', 'opcode', 'flags', 'sgList'] }) as fc.Arbitrary<SendWr>;
const recvWr: fc.Arbitrary<RecvWr> = fc.record({ wrId: u64, sgList: fc.array(sge, { maxLength: 5 }) }, { noNullPrototype: true });

function encodeSends(wrs: SendWr[]): Uint8Array {
  const w = new FieldWriter();
  for (const wr of wrs) encodeSendWr(w, wr);
  return w.finish().slice();
}

describe('QP shard codecs', () => {
  it('send work requests come back as they went, every optional field and inline bytes included', () => {
    fc.assert(fc.property(fc.array(sendWr, { minLength: 1, maxLength: 6 }), (wrs) => {
      assert.deepEqual(decodeSendWrs(encodeSends(wrs)), wrs);
    }));
  });

  it('receive work requests come back as they went', () => {
    fc.assert(fc.property(fc.array(recvWr, { minLength: 1, maxLength: 6 }), (wrs) => {
      const w = new FieldWriter();
      for (const wr of wrs) encodeRecvWr(w, wr);
      assert.deepEqual(decodeRecvWrs(w.finish()), wrs);
    }));
  });

  it('a record cut anywhere inside a work request is refused', () => {
    fc.assert(fc.property(sendWr, fc.nat(), (wr, cut) => {
      const bytes = encodeSends([wr]);
      const at = cut % bytes.length;
      if (at === 0) return;
      assert.throws(() => decodeSendWrs(bytes.subarray(0, at)), RangeError);
    }));
  });

  it('completions come back as they went; a record of the wrong size or kind is refused', () => {
    const wc = fc.record({
      wrId: u64, status: fc.integer({ min: 0, max: 21 }), opcode: fc.constantFrom(0, 1, 2, 3, 4, 6, 128, 129), vendorErr: u32, byteLen: u32, immData: u32,
      qpNum: u32, srcQp: u32, wcFlags: u32, pkeyIndex: u32, slid: u32, sl: u32, dlidPathBits: u32, solicited: fc.boolean(),
    }, { noNullPrototype: true, requiredKeys: ['wrId', 'status', 'opcode', 'vendorErr', 'byteLen', 'immData', 'qpNum', 'srcQp', 'wcFlags', 'pkeyIndex', 'slid', 'sl', 'dlidPathBits'] }) as fc.Arbitrary<WorkCompletion>;
    fc.assert(fc.property(wc, (w) => {
      const bytes = new Uint8Array(WC_RECORD_BYTES);
      encodeWc(new DataView(bytes.buffer), 0, w);
      assert.deepEqual(decodeWc(bytes), w);
    }));
    assert.throws(() => decodeWc(new Uint8Array(WC_RECORD_BYTES - 1)), RangeError);
    const bad = new Uint8Array(WC_RECORD_BYTES);
    new DataView(bad.buffer).setUint32(56, 3, true);
    assert.throws(() => decodeWc(bad), RangeError);
  });
});
