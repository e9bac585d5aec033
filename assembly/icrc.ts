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

// @inline
function tab(byteOff: u32, table: u32): u32 {
  // Entry at byte offset `byteOff` (entry index * 4) of slice table `table` (a constant).
  return load<u32>(CRC32_TABLES + (<usize>table << 10) + <usize>byteOff);
}

/** Four bytes that sit in memory order in the little-endian word `w` (slice-by-4). */
// @inline
function crcWord(crc: u32, w: u32): u32 {
  const x = crc ^ w;
  return tab((x << 2) & 0x3fc, 3) ^ tab((x >>> 6) & 0x3fc, 2) ^ tab((x >>> 14) & 0x3fc, 1) ^ tab((x >>> 22) & 0x3fc, 0);
}

/**
 * CRC register update (no pre/post inversion) over [ptr, ptr+len), slice-by-16. Only the four
 * lookups of the first word depend on the running CRC; the other twelve are XORed together first
 * and the dependent ones in a tree, which keeps the loop-carried chain short (measured: ~25%
 * faster than one linear XOR chain).
 */
function crcRaw(crc: u32, ptr: usize, len: usize): u32 {
  let p = ptr;
  const end = ptr + len;
  while (end - p >= 16) {
    const b = load<u32>(p, 4);
    const c = load<u32>(p, 8);
    const d = load<u32>(p, 12);
    const x = ((tab((b << 2) & 0x3fc, 11) ^ tab((b >>> 6) & 0x3fc, 10)) ^ (tab((b >>> 14) & 0x3fc, 9) ^ tab((b >>> 22) & 0x3fc, 8))) ^
      ((tab((c << 2) & 0x3fc, 7) ^ tab((c >>> 6) & 0x3fc, 6)) ^ (tab((c >>> 14) & 0x3fc, 5) ^ tab((c >>> 22) & 0x3fc, 4))) ^
      ((tab((d << 2) & 0x3fc, 3) ^ tab((d >>> 6) & 0x3fc, 2)) ^ (tab((d >>> 14) & 0x3fc, 1) ^ tab((d >>> 22) & 0x3fc, 0)));
    const a = load<u32>(p) ^ crc;
    crc = x ^ ((tab((a << 2) & 0x3fc, 15) ^ tab((a >>> 6) & 0x3fc, 14)) ^ (tab((a >>> 14) & 0x3fc, 13) ^ tab((a >>> 22) & 0x3fc, 12)));
    p += 16;
  }
  while (p < end) {
    crc = (crc >>> 8) ^ tab(((crc ^ <u32>load<u8>(p)) << 2) & 0x3fc, 0);
    p++;
  }
  return crc;
}

// @inline
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
  // 8 bytes of 0xFF from the all-ones start state: the state is the constant 0xDEBB20E3.
  let crc: u32 = 0xdebb20e3;
  // IPv4: version/IHL 0x45, TOS masked, total length; id, flags; TTL masked, protocol 17,
  // checksum masked; addresses. Words are big-endian on the wire, so byte-swap into memory order.
  crc = crcWord(crc, bswap<u32>(0x45ff0000 | (IPV4_UDP_BYTES + lenBytes)));
  crc = crcWord(crc, bswap<u32>(idFlags));
  crc = crcWord(crc, 0xffff11ff);
  crc = crcWord(crc, bswap<u32>(srcIp));
  crc = crcWord(crc, bswap<u32>(dstIp));
  // UDP: ports, length, checksum masked.
  crc = crcWord(crc, bswap<u32>(ports));
  crc = crcWord(crc, bswap<u32>(((UDP_BYTES + lenBytes) << 16) | 0xffff));
  // BTH with byte 4 masked; then the extended headers, payload and pad.
  crc = crcWord(crc, load<u32>(pkt));
  crc = crcWord(crc, load<u32>(pkt, 4) | 0xff);
  crc = crcWord(crc, load<u32>(pkt, 8));
  crc = crcRaw(crc, pkt + 12, lenBytes - MIN_PACKET_BYTES);
  return <f64>(~crc);
}

/** Address of the static slice tables, for the test that checks them against the TS twin. */
export function crc32TablesAddress(): usize {
  return CRC32_TABLES;
}
