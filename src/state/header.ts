// The 32-byte header every state buffer starts with (docs/state-format.md, "Header"), and the
// checksum over the whole buffer. All fields little-endian.
//
//    0  8  magic "VRDMSTAT"
//    8  u16 major version   a reader refuses any major it does not know
//   10  u16 minor version   higher minors only add record types and trailing fields
//   12  u16 kind            what the records describe (StateKind)
//   14  u16 header bytes    32 in this version
//   16  u32 flags           low 16 bits must be understood (none are defined); high 16 ignorable
//   20  u32 total bytes     header plus records
//   24  u32 record count
//   28  u32 checksum        CRC-32 (zlib) of the whole buffer with these 4 bytes as zeros
import * as zlib from 'node:zlib';
import { crc32Raw } from '../nic/roce/crc32.js';
import { StateError, StateErrorCode } from './errors.js';

export const STATE_MAGIC = Uint8Array.from([0x56, 0x52, 0x44, 0x4d, 0x53, 0x54, 0x41, 0x54]); // "VRDMSTAT"
export const STATE_HEADER_BYTES = 32;
export const STATE_MAJOR = 1;
export const STATE_MINOR = 0;
/** Flag bits a reader must understand to read the buffer; none are defined in version 1. */
export const REQUIRED_FLAGS_MASK = 0xffff;
const CHECKSUM_OFF = 28;

/** What a buffer's records describe. */
export enum StateKind {
  /** One verbs provider's resources (SoftRoce). */
  Provider = 1,
  /** One virtio-rdma device: transport, virtqueues, device objects, and its provider nested. */
  Device = 2,
}

export interface StateHeader {
  major: number;
  minor: number;
  kind: StateKind;
  flags: number;
  totalBytes: number;
  recordCount: number;
  checksum: number;
}

const ZERO_CHECKSUM = new Uint8Array(4);

/**
 * zlib's own CRC-32 where Node has it (20.15 and later): a state is checksummed when it is saved
 * and again when it is read, with the guest stopped, and the native one costs nothing to warm up
 * where the table-driven twin runs in the interpreter the first (and at a migration, only) time.
 */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 of `buf` as if its checksum field were zero. */
export function stateChecksum(buf: Uint8Array): number {
  if (nativeCrc32 !== undefined) {
    let n = nativeCrc32(buf.subarray(0, CHECKSUM_OFF), 0);
    n = nativeCrc32(ZERO_CHECKSUM, n);
    return nativeCrc32(buf.subarray(CHECKSUM_OFF + 4), n) >>> 0;
  }
  let c = crc32Raw(~0, buf, 0, CHECKSUM_OFF);
  c = crc32Raw(c, ZERO_CHECKSUM, 0, 4);
  c = crc32Raw(c, buf, CHECKSUM_OFF + 4, buf.length - CHECKSUM_OFF - 4);
  return ~c >>> 0;
}

export function writeHeader(buf: Uint8Array, kind: StateKind, recordCount: number): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf.set(STATE_MAGIC, 0);
  v.setUint16(8, STATE_MAJOR, true);
  v.setUint16(10, STATE_MINOR, true);
  v.setUint16(12, kind, true);
  v.setUint16(14, STATE_HEADER_BYTES, true);
  v.setUint32(16, 0, true);
  v.setUint32(20, buf.length, true);
  v.setUint32(24, recordCount, true);
  v.setUint32(CHECKSUM_OFF, 0, true);
  v.setUint32(CHECKSUM_OFF, stateChecksum(buf), true);
}

const fail = (code: StateErrorCode, detail: string): never => {
  throw new StateError(code, detail);
};

/**
 * Check a buffer's header and checksum, in an order that names the first thing wrong: magic,
 * version, kind, lengths (a short buffer is Truncated), then the checksum over every byte.
 */
export function readHeader(buf: Uint8Array, kind: StateKind): StateHeader {
  if (!(buf instanceof Uint8Array)) fail(StateErrorCode.BadMagic, 'state must be a Uint8Array');
  if (buf.length < STATE_MAGIC.length) fail(StateErrorCode.Truncated, `${buf.length} bytes cannot hold the magic`);
  for (let i = 0; i < STATE_MAGIC.length; i++) if (buf[i] !== STATE_MAGIC[i]) fail(StateErrorCode.BadMagic, 'the first 8 bytes are not "VRDMSTAT"');
  if (buf.length < STATE_HEADER_BYTES) fail(StateErrorCode.Truncated, `${buf.length} bytes cannot hold the ${STATE_HEADER_BYTES}-byte header`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const h: StateHeader = {
    major: v.getUint16(8, true), minor: v.getUint16(10, true), kind: v.getUint16(12, true), flags: v.getUint32(16, true),
    totalBytes: v.getUint32(20, true), recordCount: v.getUint32(24, true), checksum: v.getUint32(CHECKSUM_OFF, true),
  };
  if (h.major !== STATE_MAJOR) fail(StateErrorCode.BadVersion, `format version ${h.major}.${h.minor}; this reader knows ${STATE_MAJOR}.x`);
  if (h.kind !== kind) fail(StateErrorCode.BadKind, `a ${StateKind[h.kind] ?? `kind ${h.kind}`} state where a ${StateKind[kind]} state was expected`);
  const headerBytes = v.getUint16(14, true);
  if (headerBytes !== STATE_HEADER_BYTES) fail(StateErrorCode.BadLength, `header of ${headerBytes} bytes; version ${STATE_MAJOR} headers are ${STATE_HEADER_BYTES}`);
  if (h.totalBytes > buf.length) fail(StateErrorCode.Truncated, `header says ${h.totalBytes} bytes, the buffer has ${buf.length}`);
  if (h.totalBytes < buf.length) fail(StateErrorCode.BadLength, `${buf.length - h.totalBytes} bytes follow the ${h.totalBytes} the header announces`);
  const got = stateChecksum(buf);
  if (got !== h.checksum) fail(StateErrorCode.BadChecksum, `stored 0x${h.checksum.toString(16)}, computed 0x${got.toString(16)}`);
  if ((h.flags & REQUIRED_FLAGS_MASK) !== 0) fail(StateErrorCode.BadVersion, `required flags 0x${(h.flags & REQUIRED_FLAGS_MASK).toString(16)} are unknown`);
  return h;
}
