// CRC-32 (zlib's: reflected polynomial 0xEDB88320) and the RoCE v2 invariant CRC over it.
//
// ICRC (IBTA vol. 1 annex A17.3.3, RoCE v2 over IPv4): CRC-32 over 8 bytes of 0xFF standing for
// the masked LRH, the 20-byte IPv4 header with TOS, TTL and header checksum all ones, the UDP
// header with its checksum all ones, the BTH with byte 4 (FECN, BECN, reserved) all ones, then
// the rest of the packet up to the ICRC; stored little-endian in the packet's last 4 bytes.
// The IP and UDP headers are not in memory (packets travel through UDP sockets): the caller
// passes the fields the receiver knows and the kernel feeds the reconstructed header from
// registers. src/nic/roce/crc32.ts and src/nic/roce/icrc.ts hold the TypeScript twins.

import { CRC32_TABLES } from "./crc32-tables";
import { ST_OUT_OF_RANGE } from "./status";

/** BTH (12 bytes) plus ICRC (4): the shortest packet an ICRC can cover. */
const MIN_PACKET_BYTES: u32 = 16;
const IPV4_UDP_BYTES: u32 = 28;
const UDP_BYTES: u32 = 8;

@inline
function tab(byteOff: u32, table: u32): u32 {
  // Entry at byte offset `byteOff` (entry index * 4) of slice table `table` (a constant).
  return load<u32>(CRC32_TABLES + (<usize>table << 10) + <usize>byteOff);
}

/**
 * One slice-by-16 step: the CRC register after the 16 bytes held, in memory order, by the
 * little-endian words a, b, c, d. Only the four lookups of `a` depend on the running CRC; the
 * other twelve are XORed together first and the dependent ones in a tree, which keeps the
 * loop-carried chain short (measured: ~25% faster than one linear XOR chain).
 */
@inline
function step16(crc: u32, a: u32, b: u32, c: u32, d: u32): u32 {
  const x = ((tab((b << 2) & 0x3fc, 11) ^ tab((b >>> 6) & 0x3fc, 10)) ^ (tab((b >>> 14) & 0x3fc, 9) ^ tab((b >>> 22) & 0x3fc, 8))) ^
    ((tab((c << 2) & 0x3fc, 7) ^ tab((c >>> 6) & 0x3fc, 6)) ^ (tab((c >>> 14) & 0x3fc, 5) ^ tab((c >>> 22) & 0x3fc, 4))) ^
    ((tab((d << 2) & 0x3fc, 3) ^ tab((d >>> 6) & 0x3fc, 2)) ^ (tab((d >>> 14) & 0x3fc, 1) ^ tab((d >>> 22) & 0x3fc, 0)));
  const y = a ^ crc;
  return x ^ ((tab((y << 2) & 0x3fc, 15) ^ tab((y >>> 6) & 0x3fc, 14)) ^ (tab((y >>> 14) & 0x3fc, 13) ^ tab((y >>> 22) & 0x3fc, 12)));
}

/** CRC register update (no pre/post inversion) over [ptr, ptr+len). */
function crcRaw(crc: u32, ptr: usize, len: usize): u32 {
  let p = ptr;
  const end = ptr + len;
  while (end - p >= 16) {
    crc = step16(crc, load<u32>(p), load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12));
    p += 16;
  }
  while (p < end) {
    crc = (crc >>> 8) ^ tab(((crc ^ <u32>load<u8>(p)) << 2) & 0x3fc, 0);
    p++;
  }
  return crc;
}

@inline
function inMemory(ptr: usize, len: u32): bool {
  return <u64>ptr + <u64>len <= (<u64>memory.size() << 16);
}

/**
 * zlib-compatible crc32(crc, bytes): continue the CRC `crc` (0 to start) over [ptr, ptr+len).
 * Returns the CRC (0 .. 2^32-1) or ST_OUT_OF_RANGE if the range leaves the memory.
 */
export function crc32Update(crc: u32, ptr: usize, len: u32): f64 {
  if (!inMemory(ptr, len)) return <f64>ST_OUT_OF_RANGE;
  return <f64>(~crcRaw(~crc, ptr, len));
}

/**
 * ICRC of the RoCE v2 packet at [pkt, pkt+lenBytes): BTH through ICRC inclusive (the ICRC's own
 * 4 bytes are not covered). The IPv4/UDP header it stood in: srcIp, dstIp (host-order u32 of the
 * dotted address), idFlags = IP identification << 16 | flags << 13 (fragment offset 0),
 * ports = UDP source port << 16 | destination port.
 * Returns the ICRC (0 .. 2^32-1, stored little-endian) or ST_OUT_OF_RANGE when the range is
 * shorter than a BTH plus ICRC or leaves the memory.
 */
export function roceIcrc(pkt: usize, lenBytes: u32, srcIp: u32, dstIp: u32, idFlags: u32, ports: u32): f64 {
  if (lenBytes < MIN_PACKET_BYTES || lenBytes > 0xffff - IPV4_UDP_BYTES || !inMemory(pkt, lenBytes)) {
    return <f64>ST_OUT_OF_RANGE;
  }
  // The 48 bytes before the extended headers, fed as three slice-by-16 steps from registers.
  // Wire fields are big-endian, so they are byte-swapped into memory order.
  //   8 x 0xFF (masked LRH)
  //   IPv4: 0x45, TOS masked, total length | id, flags | TTL masked, protocol 17, checksum
  //         masked | source | destination
  //   UDP: ports | length, checksum masked
  //   BTH with byte 4 (FECN, BECN, reserved) masked
  let crc: u32 = step16(0xffffffff, 0xffffffff, 0xffffffff, bswap<u32>(0x45ff0000 | (IPV4_UDP_BYTES + lenBytes)), bswap<u32>(idFlags));
  crc = step16(crc, 0xffff11ff, bswap<u32>(srcIp), bswap<u32>(dstIp), bswap<u32>(ports));
  crc = step16(crc, bswap<u32>(((UDP_BYTES + lenBytes) << 16) | 0xffff), load<u32>(pkt), load<u32>(pkt, 4) | 0xff, load<u32>(pkt, 8));
  crc = crcRaw(crc, pkt + 12, lenBytes - MIN_PACKET_BYTES);
  return <f64>(~crc);
}

/** Address of the static slice tables, for the test that checks them against the TS twin. */
export function crc32TablesAddress(): usize {
  return CRC32_TABLES;
}
