// RoCE v2 packets from the BTH to the ICRC: parse in place and build into a caller's buffer.
// parsePacket validates what IBTA lets a receiver check without QP state (length against the
// opcode's headers, pad count, TVer, ICRC) and returns a RoceError value rather than throwing,
// whatever the bytes. Both directions read the opcode table; neither branches on opcodes.
import { RoceError, RoceErrorCode } from './errors.js';
import * as H from './headers.js';
import { ICRC_BYTES, type IcrcContext, type IcrcEngine, MAX_ICRC_PACKET_BYTES, MIN_ICRC_PACKET_BYTES, solveIcrcIpId } from './icrc.js';
import { HDR_NAMES, Hdr, OpFlag, type OpcodeInfo, opcodeInfo } from './opcodes.js';

/** Every field of a packet's headers; extended headers only when the opcode carries them. */
export interface PacketFields extends H.Bth {
  reth?: H.Reth;
  aeth?: H.Aeth;
  atomicEth?: H.AtomicEth;
  atomicAckOrig?: bigint;
  immDt?: number;
  iethRkey?: number;
  deth?: H.Deth;
}

/** What buildPacket needs: BTH flags default to 0, P_Key to 0xFFFF; the pad count is derived. */
export type BuildFields = Pick<PacketFields, 'opcode' | 'dqpn' | 'psn'> & Partial<Omit<PacketFields, 'padCount'>>;

/** The ICRC inputs: the IP/UDP context the packet travels in and the engine that computes. */
export interface IcrcCheck {
  readonly ctx: IcrcContext;
  readonly engine: IcrcEngine;
  /**
   * How a received packet's IPv4 id is checked. 'context' (the default): it must be ctx.ipId.
   * 'any': the receiver cannot see it (a UDP socket never shows it), so the packet passes when
   * some id makes its ICRC right (solveIcrcIpId), at the cost icrc.ts works out: a random
   * corruption passes with probability about 2^-16 instead of 2^-32. Sealing ignores it.
   */
  readonly ipId?: 'context' | 'any';
}

/** A parsed packet: a view of the bytes it was parsed from (nothing is copied). */
export class RocePacket implements H.PacketView {
  constructor(
    readonly bytes: Uint8Array,
    /** Offset of the BTH in `bytes`. */
    readonly off: number,
    /** BTH through ICRC. */
    readonly lenBytes: number,
    readonly info: OpcodeInfo,
    readonly payloadBytes: number,
    readonly padCount: number,
  ) {}

  get opcode(): number {
    return this.info.opcode;
  }
  /** Offset of the payload in `bytes`. */
  get payloadOff(): number {
    return this.off + this.info.headerBytes;
  }
  /** The payload, sharing memory with `bytes`. */
  payload(): Uint8Array {
    return this.bytes.subarray(this.payloadOff, this.payloadOff + this.payloadBytes);
  }
  /** The ICRC as stored (little-endian u32). */
  get icrc(): number {
    return storedIcrc(this.bytes, this.off + this.lenBytes - ICRC_BYTES);
  }
}

function storedIcrc(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/** The extended headers that fields carry, as OpcodeInfo.headers bits. */
function headersIn(f: BuildFields): number {
  return (
    (f.deth !== undefined ? 1 << Hdr.Deth : 0) | (f.reth !== undefined ? 1 << Hdr.Reth : 0) |
    (f.atomicEth !== undefined ? 1 << Hdr.AtomicEth : 0) | (f.aeth !== undefined ? 1 << Hdr.Aeth : 0) |
    (f.atomicAckOrig !== undefined ? 1 << Hdr.AtomicAckEth : 0) | (f.immDt !== undefined ? 1 << Hdr.ImmDt : 0) |
    (f.iethRkey !== undefined ? 1 << Hdr.Ieth : 0)
  );
}

/**
 * Parse the packet at bytes[off, off+len) (BTH through ICRC). With `check`, the ICRC is verified
 * first, so any corruption reports BAD_ICRC; pass null when the caller verified it already.
 */
export function parsePacket(bytes: Uint8Array, off = 0, len = bytes.length - off, check: IcrcCheck | null = null): RocePacket | RoceError {
  if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > bytes.length) {
    return new RoceError(RoceErrorCode.Truncated, `range ${off}+${len} is outside a buffer of ${bytes.length} bytes`);
  }
  if (len < MIN_ICRC_PACKET_BYTES) return new RoceError(RoceErrorCode.Truncated, `${len} bytes cannot hold a BTH and an ICRC`);
  if (len > MAX_ICRC_PACKET_BYTES) return new RoceError(RoceErrorCode.BadLength, `${len} bytes do not fit in an IPv4 packet`);
  if (check !== null && check.ipId === 'any') {
    if (solveIcrcIpId(check.engine, check.ctx, bytes, off, len) < 0) {
      return new RoceError(RoceErrorCode.BadIcrc, `stored 0x${storedIcrc(bytes, off + len - ICRC_BYTES).toString(16)} is right under no IPv4 id`);
    }
  } else if (check !== null) {
    const want = check.engine.icrc(check.ctx, bytes, off, len);
    const got = storedIcrc(bytes, off + len - ICRC_BYTES);
    if (want !== got) return new RoceError(RoceErrorCode.BadIcrc, `stored 0x${got.toString(16)}, computed 0x${want.toString(16)}`);
  }
  if (H.bthTverAt(bytes, off) !== 0) return new RoceError(RoceErrorCode.BadVersion, `TVer ${H.bthTverAt(bytes, off)}`);
  const info = opcodeInfo(H.bthOpcodeAt(bytes, off));
  if (info === undefined) return new RoceError(RoceErrorCode.UnknownOpcode, `opcode 0x${H.bthOpcodeAt(bytes, off).toString(16)}`);
  const room = len - info.headerBytes - ICRC_BYTES;
  if (room < 0) return new RoceError(RoceErrorCode.Truncated, `${info.name} needs ${info.headerBytes + ICRC_BYTES} bytes, got ${len}`);
  // Headers are whole words and payload plus pad is padded to one (IBTA 9.2.3).
  if (len % 4 !== 0) return new RoceError(RoceErrorCode.BadLength, `${len} bytes is not a multiple of 4`);
  if (room > 0 && (info.flags & OpFlag.Payload) === 0) return new RoceError(RoceErrorCode.BadLength, `${info.name} carries no payload, got ${room} bytes`);
  const pad = H.bthPadAt(bytes, off);
  if (pad > room) return new RoceError(RoceErrorCode.BadPad, `pad count ${pad} with ${room} bytes after the headers`);
  if (pad !== 0 && (info.flags & OpFlag.Last) === 0) return new RoceError(RoceErrorCode.BadPad, `pad count ${pad} on ${info.name}`);
  return new RocePacket(bytes, off, len, info, room - pad, pad);
}

/** Every header field of a parsed packet as plain data (logs, captures, tests). */
export function packetFields(pkt: RocePacket): PacketFields {
  const f: PacketFields = H.bthAt(pkt.bytes, pkt.off);
  const b = pkt.bytes;
  const o = pkt.info.offsets;
  if (o[Hdr.Deth] >= 0) f.deth = { qkey: H.dethQkeyAt(b, pkt.off + o[Hdr.Deth]), srcQp: H.dethSrcQpAt(b, pkt.off + o[Hdr.Deth]) };
  if (o[Hdr.Reth] >= 0) {
    const r = pkt.off + o[Hdr.Reth];
    f.reth = { va: H.rethVaAt(b, r), rkey: H.rethRkeyAt(b, r), dmaLen: H.rethDmaLenAt(b, r) };
  }
  if (o[Hdr.AtomicEth] >= 0) {
    const a = pkt.off + o[Hdr.AtomicEth];
    f.atomicEth = { va: H.atomicEthVaAt(b, a), rkey: H.atomicEthRkeyAt(b, a), swapAdd: H.atomicEthSwapAddAt(b, a), compare: H.atomicEthCompareAt(b, a) };
  }
  if (o[Hdr.Aeth] >= 0) f.aeth = { syndrome: H.aethSyndromeAt(b, pkt.off + o[Hdr.Aeth]), msn: H.aethMsnAt(b, pkt.off + o[Hdr.Aeth]) };
  if (o[Hdr.AtomicAckEth] >= 0) f.atomicAckOrig = H.atomicAckOrigAt(b, pkt.off + o[Hdr.AtomicAckEth]);
  if (o[Hdr.ImmDt] >= 0) f.immDt = H.immDtAt(b, pkt.off + o[Hdr.ImmDt]);
  if (o[Hdr.Ieth] >= 0) f.iethRkey = H.iethRkeyAt(b, pkt.off + o[Hdr.Ieth]);
  return f;
}

/** Bytes a packet of this opcode with `payloadBytes` of payload takes, BTH through ICRC. */
export function packetBytes(info: OpcodeInfo, payloadBytes: number): number {
  return info.headerBytes + payloadBytes + ((4 - (payloadBytes & 3)) & 3) + ICRC_BYTES;
}

// Checks run per packet, so messages are built only on failure.
function fail(detail: string): never {
  throw new RoceError(RoceErrorCode.BadField, detail);
}
const isUint = (v: number | undefined, bits: number): boolean => v !== undefined && Number.isInteger(v) && v >= 0 && v < 2 ** bits;
const U64_END = 1n << 64n;
const isU64 = (v: bigint): boolean => typeof v === 'bigint' && v >= 0n && v < U64_END;

function checkFields(f: BuildFields, info: OpcodeInfo, payloadBytes: number): void {
  if (!(isUint(f.dqpn, 24) && isUint(f.psn, 24))) fail(`dqpn ${f.dqpn} and psn ${f.psn} must be 24-bit`);
  if (!(f.pkey === undefined || isUint(f.pkey, 16))) fail(`pkey ${f.pkey} must be 16-bit`);
  if (!(f.tver === undefined || isUint(f.tver, 4))) fail(`tver ${f.tver} must be 4-bit`);
  if (!(payloadBytes === 0 || (info.flags & OpFlag.Payload) !== 0)) fail(`${info.name} carries no payload`);
  // Only a message's last packet may be padded; first and middle ones carry whole words (9.2.3).
  if (!((payloadBytes & 3) === 0 || (info.flags & OpFlag.Last) !== 0)) fail(`${info.name} payload of ${payloadBytes} bytes is not whole words`);
  const present = headersIn(f);
  if (present !== info.headers) {
    const h = [...HDR_NAMES.keys()].find((i) => ((present ^ info.headers) >>> i) & 1)!;
    fail(`${info.name} ${(present >>> h) & 1 ? 'has no' : 'needs a'} ${HDR_NAMES[h]}`);
  }
  if (f.reth) if (!(isU64(f.reth.va) && isUint(f.reth.rkey, 32) && isUint(f.reth.dmaLen, 32))) fail('RETH field out of range');
  if (f.aeth) if (!(isUint(f.aeth.syndrome, 8) && isUint(f.aeth.msn, 24))) fail('AETH field out of range');
  if (f.atomicEth) {
    const a = f.atomicEth;
    if (!(isU64(a.va) && isUint(a.rkey, 32) && isU64(a.swapAdd) && isU64(a.compare))) fail('AtomicETH field out of range');
  }
  if (f.atomicAckOrig !== undefined) if (!(isU64(f.atomicAckOrig))) fail('AtomicAckETH field out of range');
  if (f.immDt !== undefined) if (!(isUint(f.immDt, 32))) fail('ImmDt out of range');
  if (f.iethRkey !== undefined) if (!(isUint(f.iethRkey, 32))) fail('IETH R_Key out of range');
  if (f.deth) if (!(isUint(f.deth.qkey, 32) && isUint(f.deth.srcQp, 24))) fail('DETH field out of range');
}

/**
 * Write the BTH and extended headers of a packet with `payloadBytes` of payload at out[off];
 * returns the header bytes, where the caller puts the payload (e.g. gathered from guest memory).
 * Throws RoceError on a bad field or a buffer too small for the whole packet.
 */
export function buildHeaders(f: BuildFields, payloadBytes: number, out: Uint8Array, off: number): number {
  const info = opcodeInfo(f.opcode);
  if (info === undefined) throw new RoceError(RoceErrorCode.BadField, `unknown opcode ${f.opcode}`);
  checkFields(f, info, payloadBytes);
  const total = packetBytes(info, payloadBytes);
  if (!(off >= 0 && off + total <= out.length && total <= MAX_ICRC_PACKET_BYTES)) {
    throw new RoceError(RoceErrorCode.NoSpace, `${info.name} of ${total} bytes at ${off} in a buffer of ${out.length}`);
  }
  H.setBthAt(out, off, {
    opcode: info.opcode, solicited: f.solicited ?? false, migReq: f.migReq ?? false, padCount: (4 - (payloadBytes & 3)) & 3,
    tver: f.tver ?? 0, pkey: f.pkey ?? 0xffff, fecn: f.fecn ?? false, becn: f.becn ?? false,
    dqpn: f.dqpn, ackReq: f.ackReq ?? false, psn: f.psn,
  });
  const o = info.offsets;
  if (f.deth) H.setDethAt(out, off + o[Hdr.Deth], f.deth);
  if (f.reth) H.setRethAt(out, off + o[Hdr.Reth], f.reth);
  if (f.atomicEth) H.setAtomicEthAt(out, off + o[Hdr.AtomicEth], f.atomicEth);
  if (f.aeth) H.setAethAt(out, off + o[Hdr.Aeth], f.aeth);
  if (f.atomicAckOrig !== undefined) H.setAtomicAckOrigAt(out, off + o[Hdr.AtomicAckEth], f.atomicAckOrig);
  if (f.immDt !== undefined) H.setImmDtAt(out, off + o[Hdr.ImmDt], f.immDt);
  if (f.iethRkey !== undefined) H.setIethRkeyAt(out, off + o[Hdr.Ieth], f.iethRkey);
  return info.headerBytes;
}

/**
 * Finish a packet whose headers and payload are in place at out[off, off+lenBytes): zero the pad
 * bytes (the BTH says how many) and store the ICRC.
 */
export function sealPacket(out: Uint8Array, off: number, lenBytes: number, check: IcrcCheck): void {
  const icrcOff = off + lenBytes - ICRC_BYTES;
  out.fill(0, icrcOff - H.bthPadAt(out, off), icrcOff);
  const icrc = check.engine.icrc(check.ctx, out, off, lenBytes);
  out[icrcOff] = icrc;
  out[icrcOff + 1] = icrc >>> 8;
  out[icrcOff + 2] = icrc >>> 16;
  out[icrcOff + 3] = icrc >>> 24;
}

/** Build a whole packet at out[off]: headers, payload, pad, ICRC. Returns its length in bytes. */
export function buildPacket(f: BuildFields, payload: Uint8Array, out: Uint8Array, off: number, check: IcrcCheck): number {
  const hdrBytes = buildHeaders(f, payload.length, out, off);
  out.set(payload, off + hdrBytes);
  const lenBytes = packetBytes(opcodeInfo(f.opcode) as OpcodeInfo, payload.length);
  sealPacket(out, off, lenBytes, check);
  return lenBytes;
}
