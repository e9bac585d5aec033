// The RoCE v2 invariant CRC (IBTA vol. 1 annex A17.3.3, IPv4): CRC-32 over 8 bytes of 0xFF (the
// masked LRH), the IPv4 header with TOS, TTL and checksum all ones, the UDP header with checksum
// all ones, the BTH with byte 4 all ones, then the rest of the packet; stored little-endian in
// the last 4 bytes.
//
// vrdma sends and receives through UDP sockets, so the IP and UDP headers are not in the buffer:
// an IcrcContext carries what both ends know of them, and the lengths follow from the packet's.
// roceIcrc below is the TypeScript twin of the Wasm kernel of the same name (assembly/icrc.ts);
// TsIcrc and WasmIcrc run one or the other behind the IcrcEngine interface the packet layer uses.
// solveIcrcIpId checks a packet whose IPv4 id the receiver cannot see (a UDP socket never shows
// it): it finds the one id, if any, under which the stored ICRC is right.
import type { DeviceMemory } from '../../memory/device-memory.js';
import { instantiateKernels } from '../../wasm/loader.js';
import { ST_OUT_OF_RANGE } from '../../wasm/status.js';
import { crc32Raw, CRC32_POLY } from './crc32.js';
import { RoceError, RoceErrorCode } from './errors.js';

/** What the receiver knows of the IPv4 and UDP headers a packet travelled in. */
export interface IcrcContext {
  /** Source IPv4 address as a u32 (127.0.1.5 is 0x7f000105). */
  readonly srcIp: number;
  readonly dstIp: number;
  /**
   * IPv4 identification. vrdma seals under 0 and its sockets send 0 (IP_PMTUDISC_DO, see
   * src/net/ip-id-zero.ts); a plain Linux UDP socket sends a hashed, changing id and Linux rxe a
   * counting one. A receiver that cannot see the id checks with solveIcrcIpId instead.
   */
  readonly ipId: number;
  /** The 3 IPv4 flag bits (IP_FLAG_DF); the fragment offset is always 0. */
  readonly ipFlags: number;
  readonly srcPort: number;
  readonly dstPort: number;
}

/** IANA port of RoCE v2. */
export const ROCE_UDP_PORT = 4791;
/** Don't Fragment, in IcrcContext.ipFlags. */
export const IP_FLAG_DF = 0b010;
/** BTH plus ICRC: the shortest packet an ICRC covers. */
export const MIN_ICRC_PACKET_BYTES = 16;
export const ICRC_BYTES = 4;
const IPV4_UDP_BYTES = 28;
const UDP_BYTES = 8;
/** Packets whose IPv4 total length would pass 65535. */
export const MAX_ICRC_PACKET_BYTES = 0xffff - IPV4_UDP_BYTES;

/** "a.b.c.d" -> u32. */
export function ipv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new RangeError(`not an IPv4 address: ${text}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** u32 -> "a.b.c.d". */
export function ipv4Text(address: number): string {
  return [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join('.');
}

/**
 * IPv4 addresses as a packet's ICRC context and the packet rings carry them (u32) and as links
 * name them (text), converting only when the address changes: a VM's packets mostly go to and
 * come from the same few peers.
 */
export class AddressCache {
  private text = '';
  private u32 = 0;

  /** "a.b.c.d" to u32. */
  toU32(text: string): number {
    if (text !== this.text) {
      this.u32 = ipv4(text);
      this.text = text;
    }
    return this.u32;
  }

  /** u32 to "a.b.c.d". */
  toText(u32: number): string {
    if (u32 !== this.u32 || this.text === '') {
      this.text = ipv4Text(u32);
      this.u32 = u32;
    }
    return this.text;
  }
}

/** The kernel's packed idFlags and ports arguments. */
export function icrcIdFlags(ctx: IcrcContext): number {
  return ((ctx.ipId & 0xffff) * 65536 + (ctx.ipFlags & 7) * 8192) >>> 0;
}
export function icrcPorts(ctx: IcrcContext): number {
  return ((ctx.srcPort & 0xffff) * 65536 + (ctx.dstPort & 0xffff)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// TypeScript twin of the kernel
// ---------------------------------------------------------------------------------------------

// CRC register after 8 bytes of 0xFF from the all-ones start.
const MASKED_LRH_STATE = crc32Raw(-1, new Uint8Array(8).fill(0xff), 0, 8);
const scratch = new Uint8Array(IPV4_UDP_BYTES + 12);

/**
 * Twin of the roceIcrc kernel: ICRC of the packet mem[pkt, pkt+lenBytes) (BTH through ICRC), or
 * ST_OUT_OF_RANGE when the range is shorter than BTH plus ICRC, too long for IPv4, or leaves mem.
 */
export function roceIcrc(mem: Uint8Array, pkt: number, lenBytes: number, srcIp: number, dstIp: number, idFlags: number, ports: number): number {
  if (!(pkt >= 0 && lenBytes >= MIN_ICRC_PACKET_BYTES && lenBytes <= MAX_ICRC_PACKET_BYTES && pkt + lenBytes <= mem.length)) {
    return ST_OUT_OF_RANGE;
  }
  const h = scratch;
  const ipLen = IPV4_UDP_BYTES + lenBytes;
  const udpLen = UDP_BYTES + lenBytes;
  h[0] = 0x45; h[1] = 0xff; h[2] = ipLen >>> 8; h[3] = ipLen & 0xff;
  h[4] = idFlags >>> 24; h[5] = (idFlags >>> 16) & 0xff; h[6] = (idFlags >>> 8) & 0xff; h[7] = idFlags & 0xff;
  h[8] = 0xff; h[9] = 17; h[10] = 0xff; h[11] = 0xff;
  h[12] = srcIp >>> 24; h[13] = (srcIp >>> 16) & 0xff; h[14] = (srcIp >>> 8) & 0xff; h[15] = srcIp & 0xff;
  h[16] = dstIp >>> 24; h[17] = (dstIp >>> 16) & 0xff; h[18] = (dstIp >>> 8) & 0xff; h[19] = dstIp & 0xff;
  h[20] = ports >>> 24; h[21] = (ports >>> 16) & 0xff; h[22] = (ports >>> 8) & 0xff; h[23] = ports & 0xff;
  h[24] = udpLen >>> 8; h[25] = udpLen & 0xff; h[26] = 0xff; h[27] = 0xff;
  for (let i = 0; i < 12; i++) h[IPV4_UDP_BYTES + i] = mem[pkt + i];
  h[IPV4_UDP_BYTES + 4] = 0xff;
  let crc = crc32Raw(MASKED_LRH_STATE, h, 0, h.length);
  crc = crc32Raw(crc, mem, pkt + 12, lenBytes - MIN_ICRC_PACKET_BYTES);
  return ~crc >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------

/** Computes the ICRC of bytes[off, off+lenBytes) (BTH through ICRC) sent in `ctx`. */
export interface IcrcEngine {
  icrc(ctx: IcrcContext, bytes: Uint8Array, off: number, lenBytes: number): number;
}

function checked(result: number, lenBytes: number): number {
  if (result < 0) throw new RoceError(RoceErrorCode.Truncated, `ICRC range of ${lenBytes} bytes is not a packet in memory`);
  return result;
}

/** The portable engine: runs the twin on any Uint8Array. */
export class TsIcrc implements IcrcEngine {
  icrc(ctx: IcrcContext, bytes: Uint8Array, off: number, lenBytes: number): number {
    return checked(roceIcrc(bytes, off, lenBytes, ctx.srcIp, ctx.dstIp, icrcIdFlags(ctx), icrcPorts(ctx)), lenBytes);
  }
}

interface IcrcKernels {
  roceIcrc(pkt: number, lenBytes: number, srcIp: number, dstIp: number, idFlags: number, ports: number): number;
  crc32Update(crc: number, ptr: number, len: number): number;
}

/**
 * The Wasm engine over one device memory. Bytes already in that memory are read in place; others
 * are first copied into a staging buffer in the device arena, which holds the largest packet.
 */
export class WasmIcrc implements IcrcEngine {
  readonly kernels: IcrcKernels;
  private readonly buffer: ArrayBufferLike;
  private readonly mem: Uint8Array;
  private readonly stagingOff: number;

  constructor(private readonly device: DeviceMemory, exports?: WebAssembly.Exports) {
    this.kernels = (exports ?? instantiateKernels(device.memory)) as unknown as IcrcKernels;
    this.buffer = device.memory.buffer;
    this.mem = new Uint8Array(this.buffer);
    this.stagingOff = device.arena.alloc(MAX_ICRC_PACKET_BYTES);
  }

  icrc(ctx: IcrcContext, bytes: Uint8Array, off: number, lenBytes: number): number {
    let ptr: number;
    if (bytes.buffer === this.buffer) {
      ptr = bytes.byteOffset + off;
      if (off < 0 || lenBytes < 0 || off + lenBytes > bytes.length) return checked(ST_OUT_OF_RANGE, lenBytes);
    } else {
      if (!(off >= 0 && lenBytes >= 0 && lenBytes <= MAX_ICRC_PACKET_BYTES && off + lenBytes <= bytes.length)) {
        return checked(ST_OUT_OF_RANGE, lenBytes);
      }
      this.mem.set(bytes.subarray(off, off + lenBytes), this.stagingOff);
      ptr = this.stagingOff;
    }
    const r = this.kernels.roceIcrc(ptr, lenBytes, ctx.srcIp, ctx.dstIp, icrcIdFlags(ctx), icrcPorts(ctx));
    return checked(r, lenBytes);
  }

  /** Give the staging buffer back to the arena. */
  release(): void {
    this.device.arena.release(this.stagingOff);
  }
}

// ---------------------------------------------------------------------------------------------
// Solving for the IPv4 id
// ---------------------------------------------------------------------------------------------
//
// The CRC register is linear over GF(2) in the message, so two ICRCs of one packet under ids a
// and b differ by the CRC (from a zero register) of a message that is zero except for a ^ b in
// the id's two bytes: icrc(b) = icrc(a) ^ M·(a ^ b), M a 32x16 matrix fixed by the packet's
// length. As polynomials mod P (the CRC-32 generator), with the register's bit k the coefficient
// of x^(31-k): feeding byte h4 then byte h5 and N more bytes gives (h4·x^16 + h5·x^8)·x^(8N).
// Multiplying the difference D by x^-(8(N+2)) (x is invertible mod P, whose constant term is 1)
// therefore leaves h4 + h5·x^-8, which is h4 | h5 << 8 as a register: a difference some id
// explains has its upper 16 register bits clear, and that id is unique because the map is
// injective (P never divides a nonzero polynomial of degree below 32). One CRC pass under the
// context's id and one 32-step multiply check a packet with its id unknown.
//
// Integrity cost: the stored ICRC is accepted if it lies in a 2^16-element set of 2^32, so a
// uniformly random corruption of the n covered bits passes with probability (2^(n-16) - 1) /
// (2^n - 1), just under 2^-16, against (2^(n-32) - 1) / (2^n - 1), just under 2^-32, with the id
// known. Structured errors lose their guarantees too: every single-bit error is still detected in
// packets (BTH through ICRC) up to 26744 bytes, far past the 4 KiB RoCE MTU (the first undetected
// bit is 214135 bits past the id), but two bit flips 77 bits apart can pass in a 53-byte packet,
// and some burst of 16 bits or less passes at almost every offset. This is acceptable because the
// ICRC is not the only check: the Ethernet FCS (a full CRC-32) covers every link hop, so what the
// ICRC alone must catch is corruption inside a switch or router between hops.

/** The id's two bytes are 20 bytes after the start of the CRC'd IPv4 header, plus the masked LRH. */
const ID_TRAILER_BYTES = IPV4_UDP_BYTES + 12 - 6 - MIN_ICRC_PACKET_BYTES;

/** a·b mod P on reflected CRC-32 registers (bit 31 is x^0). */
export function crc32MulMod(a: number, b: number): number {
  // Int32 arithmetic throughout (the JIT keeps it in registers): a's bits from x^0 (the sign bit)
  // down, b multiplied by x at each step.
  let p = 0;
  let aa = a | 0;
  let v = b | 0;
  for (let i = 0; i < 32 && aa !== 0; i++) {
    if (aa < 0) p ^= v;
    aa <<= 1;
    v = (v & 1) !== 0 ? (v >>> 1) ^ CRC32_POLY : v >>> 1;
  }
  return p >>> 0;
}

/** INV_POWERS[k] = x^-(2^k) mod P; 2^20 bits cover the longest packet. */
const INV_POWERS = (() => {
  const t = new Uint32Array(21);
  // x^-1: the register that one CRC step (multiply by x) turns into x^0. P's x^0 term is the
  // top bit of CRC32_POLY, so undo the reduction, then the shift.
  t[0] = ((((0x80000000 ^ CRC32_POLY) << 1) | 1) >>> 0);
  for (let k = 1; k < t.length; k++) t[k] = crc32MulMod(t[k - 1], t[k - 1]);
  return t;
})();

/** x^-bits mod P. */
function invPowerX(bits: number): number {
  let r = 0x80000000;
  for (let k = 0; bits !== 0; k++, bits >>>= 1) if ((bits & 1) !== 0) r = crc32MulMod(r, INV_POWERS[k]);
  return r;
}

// x^-(8(lenBytes + ID_TRAILER_BYTES + 2)) per packet length, filled on first use. A memo of
// constants: every caller would compute the same values, so sharing it is safe.
const unshiftByLength = new Uint32Array(MAX_ICRC_PACKET_BYTES + 1);

/**
 * The id difference that turns an ICRC into another for a packet of lenBytes (BTH through ICRC):
 * a ^ b where icrcUnder(b) = icrcUnder(a) ^ diff, or -1 when no id explains diff.
 */
export function icrcIpIdDelta(diff: number, lenBytes: number): number {
  if (!(Number.isInteger(lenBytes) && lenBytes >= MIN_ICRC_PACKET_BYTES && lenBytes <= MAX_ICRC_PACKET_BYTES)) {
    throw new RangeError(`${lenBytes} bytes is not an ICRC packet length`);
  }
  let u = unshiftByLength[lenBytes];
  if (u === 0) u = unshiftByLength[lenBytes] = invPowerX(8 * (lenBytes + ID_TRAILER_BYTES + 2));
  const w = crc32MulMod(diff, u);
  if ((w & 0xffff0000) !== 0) return -1;
  return ((w & 0xff) << 8) | (w >>> 8);
}

/**
 * The IPv4 id under which the stored ICRC of bytes[off, off+lenBytes) is right, given everything
 * else in `ctx` (whose ipId is ignored), or -1 when there is none: a packet whose sender's id the
 * receiver cannot see. Throws RoceError(TRUNCATED) like the engine for a range that is no packet.
 */
export function solveIcrcIpId(engine: IcrcEngine, ctx: IcrcContext, bytes: Uint8Array, off: number, lenBytes: number): number {
  const computed = engine.icrc(ctx, bytes, off, lenBytes);
  const o = off + lenBytes - ICRC_BYTES;
  const stored = (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0;
  const delta = icrcIpIdDelta((computed ^ stored) >>> 0, lenBytes);
  return delta < 0 ? -1 : delta ^ (ctx.ipId & 0xffff);
}
