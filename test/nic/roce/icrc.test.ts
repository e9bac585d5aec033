import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { DeviceMemory, WASM_DATA_BYTES } from '../../../src/memory/index.js';
import { crc32Tables, crc32Update } from '../../../src/nic/roce/crc32.js';
import { type IcrcContext, TsIcrc, WasmIcrc, icrcIdFlags, icrcPorts, ipv4, ipv4Text, roceIcrc } from '../../../src/nic/roce/icrc.js';
import { instantiateKernels } from '../../../src/wasm/loader.js';
import { ST_OUT_OF_RANGE } from '../../../src/wasm/status.js';

interface Kernels {
  crc32Update(crc: number, ptr: number, len: number): number;
  roceIcrc(pkt: number, len: number, srcIp: number, dstIp: number, idFlags: number, ports: number): number;
  crc32TablesAddress(): number;
  kernelDataEnd(): number;
}

const device = DeviceMemory.create({ ramBytes: 2 * 1024 * 1024, arenaBytes: 1024 * 1024 });
const k = instantiateKernels(device.memory) as unknown as Kernels;
const mem = new Uint8Array(device.memory.buffer);
const scratchOff = device.arena.alloc(128 * 1024);

const context = fc.record({
  srcIp: fc.nat({ max: 0xffffffff }),
  dstIp: fc.nat({ max: 0xffffffff }),
  ipId: fc.nat({ max: 0xffff }),
  ipFlags: fc.nat({ max: 7 }),
  srcPort: fc.nat({ max: 0xffff }),
  dstPort: fc.nat({ max: 0xffff }),
});

describe('CRC-32', () => {
  it('node:zlib has crc32 (Node 20.15+), the reference here', () => {
    assert.equal(typeof zlibCrc32, 'function');
    assert.equal(zlibCrc32(Buffer.from('123456789')), 0xcbf43926); // the CRC-32 check value
  });

  it('the Wasm static tables are the TS twin tables and fit the static data window', () => {
    const want = crc32Tables(16);
    const at = k.crc32TablesAddress();
    assert.deepEqual(new Uint32Array(device.memory.buffer.slice(at, at + want.byteLength)), want);
    assert.ok(k.kernelDataEnd() <= WASM_DATA_BYTES);
  });

  it('Wasm kernel, TS twin and zlib agree on random data, offsets and start values', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat({ max: 63 }), fc.nat({ max: 0xffffffff }), (data, shift, start) => {
        const ptr = scratchOff + shift;
        mem.set(data, ptr);
        const want = zlibCrc32(data, start);
        assert.equal(k.crc32Update(start, ptr, data.length), want);
        assert.equal(crc32Update(mem, start, ptr, data.length), want);
      }),
      { numRuns: 300 },
    );
  });

  it('both refuse ranges that leave the memory', () => {
    const end = mem.length;
    for (const [ptr, len] of [[end - 3, 4], [end, 1], [0xffffffff, 2]]) {
      assert.equal(k.crc32Update(0, ptr, len), ST_OUT_OF_RANGE);
      assert.equal(crc32Update(mem, 0, ptr, len), ST_OUT_OF_RANGE);
    }
    assert.equal(k.crc32Update(0, end - 4, 4), zlibCrc32(mem.subarray(end - 4)));
  });
});

describe('ICRC', () => {
  it('Wasm kernel and TS twin agree on random packets and contexts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 2100 }), context, fc.nat({ max: 15 }), (pkt, ctx, shift) => {
        const ptr = scratchOff + shift;
        mem.set(pkt, ptr);
        const args = [ctx.srcIp, ctx.dstIp, icrcIdFlags(ctx), icrcPorts(ctx)] as const;
        const want = roceIcrc(mem, ptr, pkt.length, ...args);
        assert.ok(want >= 0);
        assert.equal(k.roceIcrc(ptr, pkt.length, ...args), want);
        // The twin over a standalone buffer gives the same as over the memory.
        assert.equal(roceIcrc(pkt, 0, pkt.length, ...args), want);
      }),
      { numRuns: 300 },
    );
  });

  it('is the zlib CRC of the masked pseudo-header and packet (annex A17)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 600 }), context, (pkt, ctx) => {
        const h = Buffer.alloc(8 + 28 + pkt.length - 4);
        h.fill(0xff, 0, 8);
        h.writeUInt8(0x45, 8);
        h.writeUInt8(0xff, 9);
        h.writeUInt16BE(28 + pkt.length, 10);
        h.writeUInt16BE(ctx.ipId, 12);
        h.writeUInt16BE(ctx.ipFlags << 13, 14);
        h.writeUInt32BE(0xff11ffff, 16);
        h.writeUInt32BE(ctx.srcIp, 20);
        h.writeUInt32BE(ctx.dstIp, 24);
        h.writeUInt16BE(ctx.srcPort, 28);
        h.writeUInt16BE(ctx.dstPort, 30);
        h.writeUInt16BE(8 + pkt.length, 32);
        h.writeUInt16BE(0xffff, 34);
        h.set(pkt.subarray(0, pkt.length - 4), 36);
        h[36 + 4] = 0xff;
        assert.equal(new TsIcrc().icrc(ctx, pkt, 0, pkt.length), zlibCrc32(h));
      }),
      { numRuns: 100 },
    );
  });

  it('both refuse packets shorter than BTH + ICRC, too long for IPv4, or outside the memory', () => {
    for (const [ptr, len] of [[scratchOff, 15], [scratchOff, 0], [scratchOff, 65536 - 28], [mem.length - 15, 16]]) {
      assert.equal(k.roceIcrc(ptr, len, 1, 2, 3, 4), ST_OUT_OF_RANGE);
      assert.equal(roceIcrc(mem, ptr, len, 1, 2, 3, 4), ST_OUT_OF_RANGE);
    }
  });

  it('WasmIcrc reads bytes in the device memory in place and stages others', () => {
    const engine = new WasmIcrc(device);
    const ts = new TsIcrc();
    const ctx: IcrcContext = { srcIp: ipv4('127.0.1.5'), dstIp: ipv4('127.0.0.2'), ipId: 0, ipFlags: 2, srcPort: 49152, dstPort: 4791 };
    const outside = Uint8Array.from({ length: 1100 }, (_, i) => (i * 7) & 0xff);
    mem.set(outside, scratchOff);
    const inside = mem.subarray(scratchOff - 10, scratchOff + 1100);
    const want = ts.icrc(ctx, outside, 0, 1100);
    assert.equal(engine.icrc(ctx, outside, 0, 1100), want);
    assert.equal(engine.icrc(ctx, inside, 10, 1100), want);
    // Staging must not disturb the bytes the caller passed or anything else it holds.
    assert.deepEqual(mem.subarray(scratchOff, scratchOff + 1100), outside);
    assert.throws(() => engine.icrc(ctx, outside, 1090, 20));
    engine.release();
  });

  it('ipv4 text round trips and refuses junk', () => {
    assert.equal(ipv4('127.0.1.5'), 0x7f000105);
    assert.equal(ipv4Text(0xc0a80001), '192.168.0.1');
    for (const bad of ['1.2.3', '1.2.3.256', 'a.b.c.d', '1.2.3.4.5']) assert.throws(() => ipv4(bad), RangeError);
  });
});
