// RoCE v2 wire layer: ICRC throughput of the Wasm kernel against its TypeScript twin (and
// node:zlib's native crc32 over the same bytes, which computes plain CRC-32 without the ICRC's
// pseudo-header, as a reference point), and the cost of building and parsing headers.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { DeviceMemory } from '../src/memory/index.js';
import { type IcrcContext, TsIcrc, WasmIcrc, icrcIpIdDelta, solveIcrcIpId } from '../src/nic/roce/icrc.js';
import { Opcode } from '../src/nic/roce/opcodes.js';
import { type BuildFields, buildHeaders, packetBytes, parsePacket } from '../src/nic/roce/packet.js';
import { opcodeInfo } from '../src/nic/roce/opcodes.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const SUITE = 'roce-wire';
/** Packets per task call, at distinct offsets, so call overhead does not dominate small sizes. */
const BATCH = 32;
const SIZES = [64, 256, 1024, 4096];

export default async function (): Promise<BenchRow[]> {
  const device = DeviceMemory.create({ ramBytes: 2 * 1024 * 1024, arenaBytes: 4 * 1024 * 1024 });
  const wasm = new WasmIcrc(device);
  const ts = new TsIcrc();
  const mem = new Uint8Array(device.memory.buffer);
  const ctx: IcrcContext = { srcIp: 0x7f000105, dstIp: 0x7f000002, ipId: 0, ipFlags: 2, srcPort: 49152, dstPort: 4791 };
  const base = device.arena.alloc(BATCH * 4096);
  for (let i = 0; i < BATCH * 4096; i++) mem[base + i] = (i * 2654435761) >>> 24;

  let sink = 0;
  const tasks: BenchTask[] = [];
  for (const size of SIZES) {
    const name = `icrc ${size}B`;
    const bytes = BATCH * size;
    tasks.push({
      name, engine: 'wasm', unit: 'byte', opsPerCall: bytes,
      fn: () => { for (let i = 0; i < BATCH; i++) sink ^= wasm.icrc(ctx, mem, base + i * size, size); },
    });
    tasks.push({
      name, engine: 'ts', unit: 'byte', opsPerCall: bytes,
      fn: () => { for (let i = 0; i < BATCH; i++) sink ^= ts.icrc(ctx, mem, base + i * size, size); },
    });
    const views = Array.from({ length: BATCH }, (_, i) => mem.subarray(base + i * size, base + (i + 1) * size - 4));
    tasks.push({
      name, engine: 'zlib', unit: 'byte', opsPerCall: bytes, extra: { note: 'native crc32 of the packet bytes only, no pseudo-header' },
      fn: () => { for (let i = 0; i < BATCH; i++) sink ^= zlibCrc32(views[i]); },
    });
  }

  // Checking with the IPv4 id unknown (IcrcCheck ipId 'any'): the ICRC pass plus solving for the
  // id; and the solve alone, per packet, to show what it adds to the pass above.
  for (const size of [64, 4096]) {
    const name = `icrc check, id unknown ${size}B`;
    for (const [engineName, engine] of [['wasm', wasm], ['ts', ts]] as const) {
      tasks.push({
        name, engine: engineName, unit: 'byte', opsPerCall: BATCH * size,
        fn: () => { for (let i = 0; i < BATCH; i++) sink ^= solveIcrcIpId(engine, ctx, mem, base + i * size, size); },
      });
    }
  }
  let diff = 0x12345678;
  tasks.push({
    name: 'ip id solve only', engine: 'ts', unit: 'packet', opsPerCall: BATCH,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        diff = (Math.imul(diff, 1103515245) + 12345) >>> 0;
        sink ^= icrcIpIdDelta(diff, SIZES[i & 3]);
      }
    },
  });

  // Header build + parse (no ICRC): an RDMA WRITE ONLY with immediate, the opcode with the most
  // extended headers on the data path, and an ACK.
  const fields: BuildFields[] = [
    { opcode: Opcode.RcWriteOnlyImm, dqpn: 17, psn: 0xfffffe, ackReq: true, reth: { va: 0x7f0010000000n, rkey: 0x1234, dmaLen: 1024 }, immDt: 7 },
    { opcode: Opcode.RcAck, dqpn: 34, psn: 100, aeth: { syndrome: 0x1f, msn: 9 } },
  ];
  const out = new Uint8Array(4096);
  const lens = fields.map((f) => packetBytes(opcodeInfo(f.opcode)!, f.opcode === Opcode.RcAck ? 0 : 1024));
  tasks.push({
    name: 'headers build+parse', engine: 'ts', unit: 'packet', opsPerCall: BATCH * 2,
    fn: () => {
      for (let i = 0; i < BATCH; i++) {
        for (let j = 0; j < 2; j++) {
          const f = fields[j];
          f.psn = (f.psn + 1) & 0xffffff;
          buildHeaders(f, j === 0 ? 1024 : 0, out, 0);
          const p = parsePacket(out, 0, lens[j], null);
          if (p instanceof Error) throw p;
          sink ^= p.payloadBytes;
        }
      }
    },
  });

  const rows = await runTasks(SUITE, tasks);
  wasm.release();
  if (sink === 0.5) console.log(sink); // keep the results alive
  return withRatios(rows).map((r) =>
    r.unit === 'byte' ? { ...r, GBps: Number((r.opsPerSec / 1e9).toFixed(3)) } : { ...r, nsPerPacket: Number((1e9 / r.opsPerSec).toFixed(1)) },
  );
}
