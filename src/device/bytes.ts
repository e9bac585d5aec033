// Little-endian field access for the spec's structs (docs/device-spec.md §1). 64-bit fields are
// read as bigint where the full range matters (wr_id, atomics) and as checked numbers where the
// value must be an address or length below 2^53.

export function u64(v: DataView, off: number): bigint {
  return v.getBigUint64(off, true);
}

/** A u64 as a number, or -1 if it is 2^53 or more (no guest value there is valid). */
export function u64n(v: DataView, off: number): number {
  const value = v.getUint32(off, true) + v.getUint32(off + 4, true) * 2 ** 32;
  return Number.isSafeInteger(value) ? value : -1;
}

export function setU64(v: DataView, off: number, value: number | bigint): void {
  v.setBigUint64(off, BigInt(value), true);
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** True if every byte of bytes[from, to) is zero. */
export function allZero(bytes: Uint8Array, from = 0, to = bytes.length): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** A GID as 16 network-order bytes -> dotted IPv4 if IPv4-mapped (::ffff:a.b.c.d), else null. */
export function gidToIpv4(gid: Uint8Array): string | null {
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return null;
  if (gid[10] !== 0xff || gid[11] !== 0xff) return null;
  return `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
}

/** Dotted IPv4 -> the IPv4-mapped GID bytes. */
export function ipv4ToGid(ip: string): Uint8Array {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`not an IPv4 address: ${ip}`);
  const gid = new Uint8Array(16);
  gid[10] = 0xff;
  gid[11] = 0xff;
  gid.set(parts, 12);
  return gid;
}
