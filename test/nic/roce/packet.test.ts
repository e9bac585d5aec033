import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import * as H from '../../../src/nic/roce/headers.js';
import { type IcrcContext, TsIcrc } from '../../../src/nic/roce/icrc.js';
import { Hdr, OPCODES, OpFlag, Opcode, type OpcodeInfo, opcodeInfo } from '../../../src/nic/roce/opcodes.js';
import { type BuildFields, type IcrcCheck, RocePacket, buildPacket, packetBytes, packetFields, parsePacket } from '../../../src/nic/roce/packet.js';

const ctx: IcrcContext = { srcIp: 0x7f000105, dstIp: 0x7f000002, ipId: 0, ipFlags: 2, srcPort: 50000, dstPort: 4791 };
const check: IcrcCheck = { ctx, engine: new TsIcrc() };

const u32 = fc.nat({ max: 0xffffffff });
const u24 = fc.nat({ max: 0xffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

/** Random valid build fields and payload for one opcode. */
function packetOf(info: OpcodeInfo): fc.Arbitrary<{ f: BuildFields; payload: Uint8Array }> {
  const has = (h: Hdr) => info.offsets[h] >= 0;
  return fc
    .record({
      dqpn: u24, psn: u24, pkey: fc.nat({ max: 0xffff }), solicited: fc.boolean(), migReq: fc.boolean(), ackReq: fc.boolean(),
      fecn: fc.boolean(), becn: fc.boolean(),
      reth: fc.record({ va: u64, rkey: u32, dmaLen: u32 }),
      aeth: fc.record({ syndrome: fc.nat({ max: 0xff }), msn: u24 }),
      atomicEth: fc.record({ va: u64, rkey: u32, swapAdd: u64, compare: u64 }),
      atomicAckOrig: u64, immDt: u32, iethRkey: u32,
      deth: fc.record({ qkey: u32, srcQp: u24 }),
      payload: !(info.flags & OpFlag.Payload)
        ? fc.constant(new Uint8Array(0))
        : info.flags & OpFlag.Last
          ? fc.uint8Array({ maxLength: 300 })
          : fc.nat({ max: 75 }).chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
    })
    .map(({ payload, reth, aeth, atomicEth, atomicAckOrig, immDt, iethRkey, deth, ...bth }) => {
      const f: BuildFields = { opcode: info.opcode, ...bth };
      if (has(Hdr.Reth)) f.reth = { ...reth }; // fc.record objects have a null prototype
      if (has(Hdr.Aeth)) f.aeth = { ...aeth };
      if (has(Hdr.AtomicEth)) f.atomicEth = { ...atomicEth };
      if (has(Hdr.AtomicAckEth)) f.atomicAckOrig = atomicAckOrig;
      if (has(Hdr.ImmDt)) f.immDt = immDt;
      if (has(Hdr.Ieth)) f.iethRkey = iethRkey;
      if (has(Hdr.Deth)) f.deth = { ...deth };
      return { f, payload };
    });
}
const anyPacket = fc.constantFrom(...OPCODES).chain(packetOf);

function build(f: BuildFields, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(packetBytes(opcodeInfo(f.opcode)!, payload.length));
  buildPacket(f, payload, out, 0, check);
  return out;
}

/** parsePacket must return a packet or a RoceError for any input, never throw. */
function parseSafely(bytes: Uint8Array, off?: number, len?: number): RocePacket | RoceError {
  const r = parsePacket(bytes, off, len, check);
  assert.ok(r instanceof RocePacket || r instanceof RoceError);
  return r;
}

describe('packet build and parse', () => {
  for (const info of OPCODES) {
    it(`round trips random ${info.name} packets`, () => {
      fc.assert(
        fc.property(packetOf(info), fc.nat({ max: 9 }), ({ f, payload }, shift) => {
          const bytes = new Uint8Array(shift + packetBytes(info, payload.length) + 5);
          const len = buildPacket(f, payload, bytes, shift, check);
          const pkt = parsePacket(bytes, shift, len, check);
          assert.ok(pkt instanceof RocePacket, String(pkt));
          assert.deepEqual(pkt.payload(), payload);
          assert.equal(pkt.padCount, (4 - (payload.length % 4)) % 4);
          const got = packetFields(pkt);
          const { padCount, tver, ...rest } = got;
          assert.equal(tver, 0);
          assert.equal(padCount, pkt.padCount);
          assert.deepEqual(rest, { ...f, opcode: info.opcode });
          // Packet-level accessors agree with the decoded fields.
          assert.equal(H.bthPsn(pkt), f.psn);
          assert.equal(H.bthDqpn(pkt), f.dqpn);
          if (f.reth) assert.equal(H.rethVa(pkt), f.reth.va);
          if (f.atomicEth) assert.equal(H.atomicEthCompare(pkt), f.atomicEth.compare);
          if (f.deth) assert.equal(H.dethSrcQp(pkt), f.deth.srcQp);
          if (f.immDt !== undefined) assert.equal(H.immDt(pkt), f.immDt);
          // Building again from the decoded fields gives the same bytes.
          assert.deepEqual(build(got, pkt.payload()), bytes.subarray(shift, shift + len));
        }),
        { numRuns: 40 },
      );
    });
  }

  it('packet-level setters used by retransmission keep the rest intact', () => {
    const bytes = build({ opcode: Opcode.RcSendOnly, dqpn: 17, psn: 5 }, new Uint8Array(8));
    H.setBthPsnAt(bytes, 0, 0xffffff);
    H.setBthAckReqAt(bytes, 0, true);
    H.setBthDqpnAt(bytes, 0, 0x123456);
    const pkt = parsePacket(bytes);
    assert.ok(pkt instanceof RocePacket);
    assert.deepEqual([H.bthPsn(pkt), H.bthAckReq(pkt), H.bthDqpn(pkt), H.bthPkey(pkt)], [0xffffff, true, 0x123456, 0xffff]);
  });

  it('AETH syndromes encode ACK, RNR NAK and NAK', () => {
    assert.equal(H.aethSyndrome(H.AethType.Ack, H.AETH_CREDITS_INVALID), 0x1f);
    assert.equal(H.aethSyndrome(H.AethType.RnrNak, 14), 0x2e);
    assert.equal(H.aethSyndrome(H.AethType.Nak, H.NakCode.RemoteAccessError), 0x62);
    assert.equal(H.aethTypeOf(0x62), H.AethType.Nak);
    assert.equal(H.aethValueOf(0x2e), 14);
  });

  it('refuses bad build fields and small buffers with RoceError', () => {
    const refuse = (f: BuildFields, payload = new Uint8Array(0), out = new Uint8Array(512), code = RoceErrorCode.BadField) =>
      assert.throws(() => buildPacket(f, payload, out, 0, check), (e: unknown) => e instanceof RoceError && e.code === code);
    refuse({ opcode: 0x15, dqpn: 1, psn: 1 });
    refuse({ opcode: Opcode.RcSendOnly, dqpn: 1 << 24, psn: 1 });
    refuse({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: -1 });
    refuse({ opcode: Opcode.RcWriteOnly, dqpn: 1, psn: 1 }); // no RETH
    refuse({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1, immDt: 5 }); // a header it does not carry
    refuse({ opcode: Opcode.RcAck, dqpn: 1, psn: 1, aeth: { syndrome: 0, msn: 0 } }, new Uint8Array(4)); // payload on ACK
    refuse({ opcode: Opcode.RcSendFirst, dqpn: 1, psn: 1 }, new Uint8Array(6)); // a pad on a first packet
    refuse({ opcode: Opcode.RcReadRequest, dqpn: 1, psn: 1, reth: { va: -1n, rkey: 0, dmaLen: 0 } });
    refuse({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(10), new Uint8Array(20), RoceErrorCode.NoSpace);
  });
});

describe('hostile packets give RoceError, never an exception', () => {
  it('every truncation of a valid packet is refused', () => {
    fc.assert(
      fc.property(anyPacket, ({ f, payload }) => {
        const bytes = build(f, payload);
        for (let len = 0; len < bytes.length; len++) {
          const r = parseSafely(bytes, 0, len);
          // A cut packet fails the ICRC (or is too short to have one).
          assert.ok(r instanceof RoceError, `length ${len} of ${bytes.length}`);
          assert.ok([RoceErrorCode.Truncated, RoceErrorCode.BadIcrc].includes(r.code));
        }
      }),
      { numRuns: 30 },
    );
  });

  it('random bytes, offsets and lengths never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: -5, max: 210 }), fc.integer({ min: -5, max: 210 }), (bytes, off, len) => {
        const r = parseSafely(bytes, off, len);
        if (r instanceof RocePacket) assert.ok(r.off + r.lenBytes <= bytes.length);
        parsePacket(bytes, 0, bytes.length, null);
      }),
      { numRuns: 2000 },
    );
  });

  it('structural checks hold after the ICRC: random headers with a valid ICRC', () => {
    // With the ICRC made right, the structure checks are what stands between the bytes and a QP.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 120 }), (raw) => {
        const bytes = raw.subarray(0, raw.length & ~3);
        const len = bytes.length;
        const icrc = check.engine.icrc(ctx, bytes, 0, len);
        bytes.set([icrc & 0xff, (icrc >>> 8) & 0xff, (icrc >>> 16) & 0xff, icrc >>> 24], len - 4);
        const r = parseSafely(bytes);
        const info = opcodeInfo(bytes[0]);
        if (r instanceof RocePacket) {
          assert.ok(info !== undefined && H.bthTverAt(bytes, 0) === 0);
          assert.equal(r.info.headerBytes + r.payloadBytes + r.padCount + 4, len);
        } else {
          assert.notEqual(r.code, RoceErrorCode.BadIcrc);
        }
      }),
      { numRuns: 2000 },
    );
  });

  const resealed = (bytes: Uint8Array): Uint8Array => {
    const icrc = check.engine.icrc(ctx, bytes, 0, bytes.length);
    bytes.set([icrc & 0xff, (icrc >>> 8) & 0xff, (icrc >>> 16) & 0xff, icrc >>> 24], bytes.length - 4);
    return bytes;
  };

  it('refuses wrong pad counts, payloads where none may be, bad lengths and versions', () => {
    const expect = (bytes: Uint8Array, code: RoceErrorCode) => {
      const r = parseSafely(resealed(bytes));
      assert.ok(r instanceof RoceError && r.code === code, `${String(r)} is not ${code}`);
    };
    const send = build({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(0));
    send[1] |= 0x30; // pad 3 with no payload bytes to pad
    expect(send, RoceErrorCode.BadPad);
    const first = build({ opcode: Opcode.RcSendFirst, dqpn: 1, psn: 1 }, new Uint8Array(8));
    first[1] |= 0x10; // pad on a first packet
    expect(first, RoceErrorCode.BadPad);
    const ack = build({ opcode: Opcode.RcAck, dqpn: 1, psn: 1, aeth: { syndrome: 0x1f, msn: 1 } }, new Uint8Array(0));
    const longAck = new Uint8Array(ack.length + 4);
    longAck.set(ack);
    expect(longAck, RoceErrorCode.BadLength); // ACK with 4 payload bytes
    const odd = new Uint8Array(send.length + 2);
    odd.set(build({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(0)));
    expect(odd, RoceErrorCode.BadLength); // not a whole number of words
    const v1 = build({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(4));
    v1[1] |= 1;
    expect(v1, RoceErrorCode.BadVersion);
    const unknown = build({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(4));
    unknown[0] = 0x15;
    expect(unknown, RoceErrorCode.UnknownOpcode);
    const shortWrite = build({ opcode: Opcode.RcSendOnly, dqpn: 1, psn: 1 }, new Uint8Array(4));
    shortWrite[0] = Opcode.RcWriteOnly; // 20 bytes cannot hold BTH + RETH + ICRC
    expect(shortWrite, RoceErrorCode.Truncated);
  });
});
