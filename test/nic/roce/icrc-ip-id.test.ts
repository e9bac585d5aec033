// Checking an ICRC whose IPv4 id the receiver cannot see: solveIcrcIpId finds the one id under
// which the stored ICRC is right, or none. Oracles: real Linux rxe traffic (whose ids count), the
// roce-v2 vectors with their corrupt twins, and random packets sealed under random ids.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeviceMemory } from '../../../src/memory/index.js';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import { parseFrame } from '../../../src/nic/roce/frame.js';
import {
  ICRC_BYTES, type IcrcContext, type IcrcEngine, TsIcrc, WasmIcrc, crc32MulMod, icrcIpIdDelta, solveIcrcIpId,
} from '../../../src/nic/roce/icrc.js';
import { parsePacket } from '../../../src/nic/roce/packet.js';
import { readPcap } from '../../../src/nic/roce/pcap.js';
import { fixtureBytes, loadVectors } from './fixtures.js';

const device = DeviceMemory.create({ ramBytes: 2 * 1024 * 1024, arenaBytes: 1024 * 1024 });
const engines: [string, IcrcEngine][] = [['ts', new TsIcrc()], ['wasm', new WasmIcrc(device)]];
const ts = new TsIcrc();

const context = fc.record({
  srcIp: fc.nat({ max: 0xffffffff }),
  dstIp: fc.nat({ max: 0xffffffff }),
  ipId: fc.nat({ max: 0xffff }),
  ipFlags: fc.nat({ max: 7 }),
  srcPort: fc.nat({ max: 0xffff }),
  dstPort: fc.nat({ max: 0xffff }),
});

function frameOf(data: Uint8Array): { ctx: IcrcContext; bthOff: number; bthLen: number } {
  const info = parseFrame(data);
  assert.ok(!(info instanceof RoceError), String(info));
  return info;
}

function seal(engine: IcrcEngine, ctx: IcrcContext, pkt: Uint8Array): void {
  const icrc = engine.icrc(ctx, pkt, 0, pkt.length);
  new DataView(pkt.buffer, pkt.byteOffset + pkt.length - ICRC_BYTES).setUint32(0, icrc, true);
}

describe('ICRC with the IPv4 id unknown', () => {
  it('GF(2) multiply: x^0 is the identity, and it agrees with shifting a CRC register', () => {
    fc.assert(fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (a, b) => {
      assert.equal(crc32MulMod(a, 0x80000000), a >>> 0);
      assert.equal(crc32MulMod(a, b), crc32MulMod(b, a));
      // One CRC step on a register is multiplication by x (0x40000000).
      const step = (a & 1) !== 0 ? ((a >>> 1) ^ 0xedb88320) >>> 0 : a >>> 1;
      assert.equal(crc32MulMod(a, 0x40000000), step);
    }));
  });

  for (const [name, engine] of engines) {
    it(`every frame of linux-rxe-send-4099.pcap verifies with its id hidden, and the id found is the real one [${name}]`, () => {
      const records = readPcap(fixtureBytes('linux-rxe-send-4099.pcap'));
      const ids = new Set<number>();
      fc.assert(fc.property(fc.nat({ max: records.length - 1 }), fc.nat({ max: 0xffff }), (i, hidden) => {
        const { ctx, bthOff, bthLen } = frameOf(records[i].data);
        const blind = { ...ctx, ipId: hidden };
        assert.equal(solveIcrcIpId(engine, blind, records[i].data, bthOff, bthLen), ctx.ipId);
        const packet = parsePacket(records[i].data, bthOff, bthLen, { ctx: blind, engine, ipId: 'any' });
        assert.ok(!(packet instanceof RoceError), String(packet));
      }), { numRuns: 200 });
      for (const r of records) {
        const { ctx, bthOff, bthLen } = frameOf(r.data);
        ids.add(ctx.ipId);
        assert.equal(solveIcrcIpId(engine, { ...ctx, ipId: 0 }, r.data, bthOff, bthLen), ctx.ipId);
      }
      // rxe counts: the capture really has many different ids, most of them not 0.
      assert.ok(ids.size > records.length / 4, `${ids.size} ids in ${records.length} frames`);
    });

    it(`roce-v2 vectors: right ones solve to their id, corrupt twins are still dropped [${name}]`, () => {
      const vectors = loadVectors();
      for (const v of vectors) {
        const { ctx, bthOff, bthLen } = frameOf(v.frame);
        for (const hidden of [0, 0xffff, ctx.ipId ^ 0x5a5a]) {
          const blind = { ...ctx, ipId: hidden };
          const id = solveIcrcIpId(engine, blind, v.frame, bthOff, bthLen);
          const packet = parsePacket(v.frame, bthOff, bthLen, { ctx: blind, engine, ipId: 'any' });
          if (v.icrcOk) {
            assert.equal(id, ctx.ipId, v.name);
            assert.ok(!(packet instanceof RoceError), String(packet));
          } else {
            assert.equal(id, -1, v.name);
            assert.ok(packet instanceof RoceError && packet.code === RoceErrorCode.BadIcrc, v.name);
          }
        }
      }
    });
  }

  it('random packets sealed under random ids verify, and any single-bit corruption is rejected', () => {
    fc.assert(fc.property(context, fc.nat({ max: 0xffff }), fc.uint8Array({ minLength: 16, maxLength: 4200 }), fc.nat(), (ctx, hidden, bytes, at) => {
      const pkt = bytes.slice();
      seal(ts, ctx, pkt);
      const blind = { ...ctx, ipId: hidden };
      assert.equal(solveIcrcIpId(ts, blind, pkt, 0, pkt.length), ctx.ipId);
      // Flip one bit anywhere the ICRC covers (BTH byte 4 is masked to ones: not covered).
      let bit = at % (pkt.length * 8);
      if (bit >> 3 === 4) bit += 8;
      pkt[bit >> 3] ^= 1 << (bit & 7);
      assert.equal(solveIcrcIpId(ts, blind, pkt, 0, pkt.length), -1, `bit ${bit} of ${pkt.length}`);
    }), { numRuns: 300 });
  });

  it('every single-bit error is rejected in a 4 KiB-MTU packet, in every bit position', () => {
    const ctx: IcrcContext = { srcIp: 0x7f000105, dstIp: 0x7f000002, ipId: 4242, ipFlags: 2, srcPort: 49152, dstPort: 4791 };
    const len = 4096 + 64;
    const pkt = Uint8Array.from({ length: len }, (_, i) => (i * 31 + 7) & 0xff);
    seal(ts, ctx, pkt);
    const base = ts.icrc({ ...ctx, ipId: 0 }, pkt, 0, len);
    const stored = new DataView(pkt.buffer).getUint32(len - ICRC_BYTES, true);
    // A flipped bit changes the ICRC by the same amount whatever the other bytes (linearity): the
    // ICRC of an all-zero packet with that bit set, against the all-zero one's.
    const zero = new Uint8Array(len);
    const zeroIcrc = ts.icrc({ ...ctx, ipId: 0 }, zero, 0, len);
    for (let bit = 0; bit < len * 8; bit++) {
      if (bit >> 3 === 4) continue;
      let diff: number;
      if (bit >= (len - ICRC_BYTES) * 8) {
        diff = 1 << (bit - (len - ICRC_BYTES) * 8);
      } else {
        zero[bit >> 3] = 1 << (bit & 7);
        diff = ts.icrc({ ...ctx, ipId: 0 }, zero, 0, len) ^ zeroIcrc;
        zero[bit >> 3] = 0;
      }
      const delta = icrcIpIdDelta((base ^ stored ^ diff) >>> 0, len);
      if (delta !== -1) assert.fail(`bit ${bit} flipped passes as id ${delta}`);
    }
  });

  it('the first single-bit error that passes is where icrc.ts says: byte 26744, bit 6 after the BTH', () => {
    const ctx: IcrcContext = { srcIp: 0x0a000001, dstIp: 0x0a000002, ipId: 7, ipFlags: 2, srcPort: 50000, dstPort: 4791 };
    const pkt = Uint8Array.from({ length: 26800 }, (_, i) => (i * 13) & 0xff);
    seal(ts, ctx, pkt);
    pkt[26744] ^= 1 << 6;
    const id = solveIcrcIpId(ts, ctx, pkt, 0, pkt.length);
    assert.ok(id >= 0 && id !== 7, `id ${id}`);
    pkt[26744] ^= 1 << 6;
    pkt[26744] ^= 1 << 5;
    assert.equal(solveIcrcIpId(ts, ctx, pkt, 0, pkt.length), -1);
  });

  it('refuses lengths that are no packet', () => {
    for (const len of [15, 65536 - 27, 1.5]) assert.throws(() => icrcIpIdDelta(0, len), RangeError);
  });
});
