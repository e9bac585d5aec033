import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceMemory } from '../../../src/memory/index.js';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import { ETH_BYTES, buildFrame, parseFrame } from '../../../src/nic/roce/frame.js';
import { IP_FLAG_DF, type IcrcEngine, TsIcrc, WasmIcrc } from '../../../src/nic/roce/icrc.js';
import { OpFlag, Opcode } from '../../../src/nic/roce/opcodes.js';
import { type RocePacket, buildPacket, packetFields, parsePacket } from '../../../src/nic/roce/packet.js';
import { readPcap } from '../../../src/nic/roce/pcap.js';
import { ackReqOf, buildFieldsOf, fixtureBytes, loadVectors } from './fixtures.js';

const vectors = loadVectors();
const device = DeviceMemory.create({ ramBytes: 2 * 1024 * 1024, arenaBytes: 1024 * 1024 });
const engines: [string, IcrcEngine][] = [['ts', new TsIcrc()], ['wasm', new WasmIcrc(device)]];

function parseFramePacket(frame: Uint8Array, engine: IcrcEngine): { packet: RocePacket | RoceError; bthOff: number; bthLen: number } {
  const info = parseFrame(frame);
  assert.ok(!(info instanceof RoceError), String(info));
  return { packet: parsePacket(frame, info.bthOff, info.bthLen, { ctx: info.ctx, engine }), bthOff: info.bthOff, bthLen: info.bthLen };
}

describe('roce-v2.json vectors', () => {
  it('covers the opcodes, corrupt twins and the IP context the brief describes', () => {
    assert.equal(vectors.length, 13);
    assert.equal(vectors.filter((v) => !v.icrcOk).length, 3);
    const info = parseFrame(vectors[0].frame);
    assert.ok(!(info instanceof RoceError));
    assert.equal(info.ctx.ipId, 1);
    assert.equal(info.ctx.ipFlags, IP_FLAG_DF);
  });

  for (const [engineName, engine] of engines) {
    for (const v of vectors) {
      it(`${v.name}: ${v.icrcOk ? 'parses to its fields' : 'is dropped with BAD_ICRC'} [${engineName}]`, () => {
        const { packet } = parseFramePacket(v.frame, engine);
        if (!v.icrcOk) {
          assert.ok(packet instanceof RoceError);
          assert.equal(packet.code, RoceErrorCode.BadIcrc);
          return;
        }
        assert.ok(!(packet instanceof RoceError), String(packet));
        const want = v.fields!;
        const got = packetFields(packet);
        assert.equal(got.opcode, want.opcode);
        assert.equal(got.dqpn, want.dqpn);
        assert.equal(got.psn, want.psn);
        assert.equal(got.ackReq, ackReqOf(want));
        assert.equal(got.migReq, true);
        assert.equal(got.solicited, want.solicited === 1);
        assert.equal(got.padCount, want.padcount ?? 0);
        assert.equal(got.pkey, 0xffff);
        const expected = buildFieldsOf(want);
        assert.deepEqual(got.reth, expected.reth);
        assert.deepEqual(got.aeth, expected.aeth);
        assert.deepEqual(got.atomicEth, expected.atomicEth);
        assert.equal(got.atomicAckOrig, expected.atomicAckOrig);
        assert.equal(got.immDt, expected.immDt);
        assert.deepEqual(got.deth, expected.deth);
        assert.equal(Buffer.from(packet.payload()).toString('hex'), want.payload_hex ?? '');
      });
    }
  }

  for (const v of vectors.filter((x) => x.icrcOk)) {
    it(`${v.name}: rebuilds byte for byte from its fields, packet and frame`, () => {
      const info = parseFrame(v.frame);
      assert.ok(!(info instanceof RoceError));
      const payload = Uint8Array.from(Buffer.from(v.fields!.payload_hex ?? '', 'hex'));
      for (const [, engine] of engines) {
        const out: Uint8Array = new Uint8Array(info.bthLen + 7);
        const n: number = buildPacket(buildFieldsOf(v.fields!), payload, out, 7, { ctx: info.ctx, engine });
        assert.equal(n, info.bthLen);
        assert.deepEqual(out.subarray(7), v.frame.subarray(info.bthOff, info.bthOff + info.bthLen));
      }
      const frame = buildFrame({ ctx: info.ctx, srcMac: info.srcMac, dstMac: info.dstMac, tos: info.tos, ttl: info.ttl }, v.frame.subarray(info.bthOff));
      assert.deepEqual(frame, v.frame);
    });
  }

  it('roce-v2.pcap holds the same frames as roce-v2.json', () => {
    const records = readPcap(fixtureBytes('roce-v2.pcap'));
    assert.deepEqual(records.map((r) => r.data), vectors.map((v) => v.frame));
  });
});

describe('linux-rxe-send-4099.pcap (two Linux 6.1 rdma_rxe devices)', () => {
  const records = readPcap(fixtureBytes('linux-rxe-send-4099.pcap'));

  for (const [engineName, engine] of engines) {
    it(`every frame parses with a right ICRC [${engineName}]`, () => {
      assert.ok(records.length > 0);
      const seen = new Set<number>();
      for (const r of records) {
        const { packet } = parseFramePacket(r.data, engine);
        assert.ok(!(packet instanceof RoceError), String(packet));
        seen.add(packet.opcode);
        if (packet.info.flags & OpFlag.Last && packet.info.flags & OpFlag.Send) {
          // 4099 bytes at MTU 1024: the last packet carries 3 bytes and one pad byte.
          assert.equal(packet.payloadBytes, 3);
          assert.equal(packet.padCount, 1);
        }
      }
      assert.deepEqual([...seen].sort((a, b) => a - b), [Opcode.RcSendFirst, Opcode.RcSendMiddle, Opcode.RcSendLast, Opcode.RcAck]);
    });
  }

  it('rebuilds every frame from its parsed fields', () => {
    for (const r of records) {
      const info = parseFrame(r.data);
      assert.ok(!(info instanceof RoceError));
      const packet = parsePacket(r.data, info.bthOff, info.bthLen);
      assert.ok(!(packet instanceof RoceError));
      const out = new Uint8Array(info.bthLen);
      buildPacket(packetFields(packet), packet.payload(), out, 0, { ctx: info.ctx, engine: engines[0][1] });
      assert.deepEqual(out, r.data.subarray(info.bthOff, info.bthOff + info.bthLen));
      assert.equal(r.data.length, ETH_BYTES + 28 + info.bthLen);
    }
  });
});
