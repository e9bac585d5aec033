// The RoCE v2 invariant CRC (IBTA vol. 1 annex A17.3.3, IPv4): CRC-32 over 8 bytes of 0xFF (the
// masked LRH), the IPv4 header with TOS, TTL and checksum all ones, the UDP header with checksum
// all ones, the BTH with byte 4 all ones, then the rest of the packet; stored little-endian in
// the last 4 bytes.
//
// vrdma sends and receives through UDP sockets, so the IP and UDP headers are not in the buffer:
// an IcrcContext carries what both ends know of them, and the lengths follow from the packet's.
// roceIcrc below is the TypeScript twin of the Wasm kernel of the same name (assembly/icrc.ts);
// TsIcrc and WasmIcrc run one or the other behind the IcrcEngine interface the packet layer uses.
import type { DeviceMemory } from '../../memory/device-memory.js';
import { instantiateKernels } from '../../wasm/loader.js';
import { ST_OUT_OF_RANGE } from '../../wasm/status.js';
import { crc32Raw } from './crc32.js';
import { RoceError, RoceErrorCode } from './errors.js';

/** What the receiver knows of the IPv4 and UDP headers a packet travelled in. */
export interface IcrcContext {
  /** Source IPv4 address as a u32 (127.0.1.5 is 0x7f000105). */
  readonly srcIp: number;
  readonly dstIp: number;
  /** IPv4 identification. Linux sends 0 on an unconnected UDP socket with DF; rxe counts. */
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
