// Ethernet + IPv4 + UDP around a RoCE v2 packet, for captures and tests: vrdma itself sends
// through UDP sockets and never builds these headers on the datapath. parseFrame finds the
// packet and the IcrcContext its ICRC needs; buildFrame wraps a packet the way Linux rxe does
// (UDP checksum 0, DF, TTL 64 by default). IPv4 options and fragments are refused: RoCE v2
// packets carry neither.
import { RoceError, RoceErrorCode } from './errors.js';
import { IP_FLAG_DF, type IcrcContext, ROCE_UDP_PORT } from './icrc.js';

export const ETH_BYTES = 14;
export const IPV4_BYTES = 20;
export const UDP_BYTES = 8;
const ETHERTYPE_IPV4 = 0x0800;
const PROTO_UDP = 17;

/** Where a frame's RoCE packet is, and the IP/UDP facts around it. */
export interface FrameInfo {
  readonly ctx: IcrcContext;
  readonly tos: number;
  readonly ttl: number;
  readonly dstMac: Uint8Array;
  readonly srcMac: Uint8Array;
  /** Offset of the BTH and length of BTH..ICRC, in the bytes parsed. */
  readonly bthOff: number;
  readonly bthLen: number;
}

const bad = (detail: string): RoceError => new RoceError(RoceErrorCode.BadFrame, detail);
const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** Parse an Ethernet frame holding IPv4/UDP to port 4791. Never throws. */
export function parseFrame(bytes: Uint8Array, off = 0, len = bytes.length - off): FrameInfo | RoceError {
  if (off < 0 || len < 0 || off + len > bytes.length || len < ETH_BYTES) return bad(`${len} bytes is no Ethernet frame`);
  if (u16(bytes, off + 12) !== ETHERTYPE_IPV4) return bad(`ethertype 0x${u16(bytes, off + 12).toString(16)} is not IPv4`);
  const ip = parseIpv4Udp(bytes, off + ETH_BYTES, len - ETH_BYTES);
  if (ip instanceof RoceError) return ip;
  return { ...ip, dstMac: bytes.subarray(off, off + 6), srcMac: bytes.subarray(off + 6, off + 12) };
}

/** Parse an IPv4 packet holding UDP to port 4791 (a frame with its Ethernet header stripped). */
export function parseIpv4Udp(bytes: Uint8Array, off: number, len: number): Omit<FrameInfo, 'dstMac' | 'srcMac'> | RoceError {
  if (len < IPV4_BYTES + UDP_BYTES) return bad(`${len} bytes cannot hold IPv4 and UDP headers`);
  if (bytes[off] !== 0x45) return bad(`version/IHL 0x${bytes[off].toString(16)}: not IPv4 without options`);
  const total = u16(bytes, off + 2);
  if (total < IPV4_BYTES + UDP_BYTES || total > len) return bad(`IPv4 total length ${total} with ${len} bytes captured`);
  const flagsFrag = u16(bytes, off + 6);
  if ((flagsFrag & 0x3fff) !== 0) return bad('IPv4 fragment');
  if (bytes[off + 9] !== PROTO_UDP) return bad(`IP protocol ${bytes[off + 9]} is not UDP`);
  const udp = off + IPV4_BYTES;
  if (u16(bytes, udp + 2) !== ROCE_UDP_PORT) return bad(`UDP port ${u16(bytes, udp + 2)} is not ${ROCE_UDP_PORT}`);
  const udpLen = u16(bytes, udp + 4);
  if (udpLen !== total - IPV4_BYTES) return bad(`UDP length ${udpLen} disagrees with IPv4 total length ${total}`);
  return {
    ctx: {
      srcIp: u32(bytes, off + 12), dstIp: u32(bytes, off + 16), ipId: u16(bytes, off + 4), ipFlags: flagsFrag >>> 13,
      srcPort: u16(bytes, udp), dstPort: ROCE_UDP_PORT,
    },
    tos: bytes[off + 1],
    ttl: bytes[off + 8],
    bthOff: udp + UDP_BYTES,
    bthLen: udpLen - UDP_BYTES,
  };
}

export interface FrameOptions {
  readonly ctx: IcrcContext;
  readonly srcMac?: Uint8Array;
  readonly dstMac?: Uint8Array;
  readonly tos?: number;
  readonly ttl?: number;
}

/** RFC 1071 checksum of an IPv4 header. */
export function ipv4Checksum(b: Uint8Array, off: number): number {
  let sum = 0;
  for (let i = 0; i < IPV4_BYTES; i += 2) if (i !== 10) sum += u16(b, off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Wrap packet (BTH..ICRC) in Ethernet, IPv4 (checksummed) and UDP (checksum 0). */
export function buildFrame(opts: FrameOptions, packet: Uint8Array): Uint8Array {
  const total = IPV4_BYTES + UDP_BYTES + packet.length;
  if (total > 0xffff) throw new RoceError(RoceErrorCode.NoSpace, `a ${packet.length}-byte packet does not fit in IPv4`);
  const f = new Uint8Array(ETH_BYTES + total);
  f.set(opts.dstMac ?? [2, 0, 0, 0, 0, 2], 0);
  f.set(opts.srcMac ?? [2, 0, 0, 0, 0, 1], 6);
  const put16 = (o: number, v: number) => { f[o] = v >>> 8; f[o + 1] = v; };
  const put32 = (o: number, v: number) => { put16(o, v >>> 16); put16(o + 2, v & 0xffff); };
  put16(12, ETHERTYPE_IPV4);
  const ip = ETH_BYTES;
  const { ctx } = opts;
  f[ip] = 0x45;
  f[ip + 1] = opts.tos ?? 0;
  put16(ip + 2, total);
  put16(ip + 4, ctx.ipId);
  put16(ip + 6, (ctx.ipFlags & 7) << 13);
  f[ip + 8] = opts.ttl ?? 64;
  f[ip + 9] = PROTO_UDP;
  put32(ip + 12, ctx.srcIp);
  put32(ip + 16, ctx.dstIp);
  put16(ip + 10, ipv4Checksum(f, ip));
  const udp = ip + IPV4_BYTES;
  put16(udp, ctx.srcPort);
  put16(udp + 2, ctx.dstPort);
  put16(udp + 4, UDP_BYTES + packet.length);
  f.set(packet, udp + UDP_BYTES);
  return f;
}

/**
 * The context vrdma seals packets under: IP id 0 with DF, which Linux puts on the wire only from a
 * socket with IP_MTU_DISCOVER = IP_PMTUDISC_DO (vrdma's, src/net/ip-id-zero.ts); a plain UDP
 * socket sends DF with a hashed, changing id.
 */
export function socketContext(srcIp: number, dstIp: number, srcPort: number): IcrcContext {
  return { srcIp, dstIp, ipId: 0, ipFlags: IP_FLAG_DF, srcPort, dstPort: ROCE_UDP_PORT };
}
