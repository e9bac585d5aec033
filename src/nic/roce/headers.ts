// Header accessors, two levels (after rxe_hdr.h): raw ones over bytes at an offset
// (`bthPsnAt(b, off)`, `setBthPsnAt(b, off, psn)`), and packet-level ones over a parsed packet
// (`bthPsn(pkt)`) that find the header through the opcode table. All fields are big-endian
// (IBTA vol. 1 9.2-9.5); 64-bit fields are bigint. Raw accessors do not check bounds: callers
// hand them offsets that parsePacket or the builders have already validated.
import { Hdr, type OpcodeInfo } from './opcodes.js';

/** What packet-level accessors need: the bytes, where the BTH starts, and its opcode entry. */
export interface PacketView {
  readonly bytes: Uint8Array;
  /** Offset of the BTH in `bytes`. */
  readonly off: number;
  readonly info: OpcodeInfo;
}

function u16At(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function u24At(b: Uint8Array, o: number): number {
  return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2];
}
function u32At(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function u64At(b: Uint8Array, o: number): bigint {
  return (BigInt(u32At(b, o)) << 32n) | BigInt(u32At(b, o + 4));
}
function setU16At(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
function setU24At(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 16;
  b[o + 1] = v >>> 8;
  b[o + 2] = v;
}
function setU32At(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}
function setU64At(b: Uint8Array, o: number, v: bigint): void {
  // Callers pass values in [0, 2^64) (the builders check).
  setU32At(b, o, Number(v >> 32n));
  setU32At(b, o + 4, Number(v & 0xffffffffn));
}

function at(pkt: PacketView, h: Hdr): number {
  return pkt.off + pkt.info.offsets[h];
}

// ---------------------------------------------------------------------------------------------
// BTH: base transport header (IBTA 9.2), 12 bytes
//   0 OpCode | 1 SE:1 M:1 PadCnt:2 TVer:4 | 2-3 P_Key | 4 FECN:1 BECN:1 resv:6 | 5-7 DestQP
//   8 AckReq:1 resv:7 | 9-11 PSN
// ---------------------------------------------------------------------------------------------

export const bthOpcodeAt = (b: Uint8Array, o: number): number => b[o];
export const bthSolicitedAt = (b: Uint8Array, o: number): boolean => (b[o + 1] & 0x80) !== 0;
export const bthMigReqAt = (b: Uint8Array, o: number): boolean => (b[o + 1] & 0x40) !== 0;
export const bthPadAt = (b: Uint8Array, o: number): number => (b[o + 1] >>> 4) & 3;
export const bthTverAt = (b: Uint8Array, o: number): number => b[o + 1] & 0xf;
export const bthPkeyAt = (b: Uint8Array, o: number): number => u16At(b, o + 2);
export const bthFecnAt = (b: Uint8Array, o: number): boolean => (b[o + 4] & 0x80) !== 0;
export const bthBecnAt = (b: Uint8Array, o: number): boolean => (b[o + 4] & 0x40) !== 0;
export const bthDqpnAt = (b: Uint8Array, o: number): number => u24At(b, o + 5);
export const bthAckReqAt = (b: Uint8Array, o: number): boolean => (b[o + 8] & 0x80) !== 0;
export const bthPsnAt = (b: Uint8Array, o: number): number => u24At(b, o + 9);

export interface Bth {
  opcode: number;
  solicited: boolean;
  migReq: boolean;
  padCount: number;
  tver: number;
  pkey: number;
  fecn: boolean;
  becn: boolean;
  dqpn: number;
  ackReq: boolean;
  psn: number;
}

/** Write a whole BTH; reserved bits are written as 0. */
export function setBthAt(b: Uint8Array, o: number, h: Bth): void {
  b[o] = h.opcode;
  b[o + 1] = (h.solicited ? 0x80 : 0) | (h.migReq ? 0x40 : 0) | ((h.padCount & 3) << 4) | (h.tver & 0xf);
  setU16At(b, o + 2, h.pkey);
  b[o + 4] = (h.fecn ? 0x80 : 0) | (h.becn ? 0x40 : 0);
  setU24At(b, o + 5, h.dqpn);
  b[o + 8] = h.ackReq ? 0x80 : 0;
  setU24At(b, o + 9, h.psn);
}
export const setBthPsnAt = (b: Uint8Array, o: number, psn: number): void => setU24At(b, o + 9, psn);
export const setBthDqpnAt = (b: Uint8Array, o: number, qpn: number): void => setU24At(b, o + 5, qpn);
export function setBthAckReqAt(b: Uint8Array, o: number, ackReq: boolean): void {
  b[o + 8] = (b[o + 8] & 0x7f) | (ackReq ? 0x80 : 0);
}

export function bthAt(b: Uint8Array, o: number): Bth {
  return {
    opcode: bthOpcodeAt(b, o), solicited: bthSolicitedAt(b, o), migReq: bthMigReqAt(b, o), padCount: bthPadAt(b, o),
    tver: bthTverAt(b, o), pkey: bthPkeyAt(b, o), fecn: bthFecnAt(b, o), becn: bthBecnAt(b, o),
    dqpn: bthDqpnAt(b, o), ackReq: bthAckReqAt(b, o), psn: bthPsnAt(b, o),
  };
}

export const bthOpcode = (p: PacketView): number => bthOpcodeAt(p.bytes, p.off);
export const bthSolicited = (p: PacketView): boolean => bthSolicitedAt(p.bytes, p.off);
export const bthPad = (p: PacketView): number => bthPadAt(p.bytes, p.off);
export const bthPkey = (p: PacketView): number => bthPkeyAt(p.bytes, p.off);
export const bthDqpn = (p: PacketView): number => bthDqpnAt(p.bytes, p.off);
export const bthAckReq = (p: PacketView): boolean => bthAckReqAt(p.bytes, p.off);
export const bthPsn = (p: PacketView): number => bthPsnAt(p.bytes, p.off);

// ---------------------------------------------------------------------------------------------
// RETH: RDMA extended transport header (IBTA 9.3.3), 16 bytes: 0 VA:64 | 8 R_Key | 12 DMALen
// ---------------------------------------------------------------------------------------------

export interface Reth {
  va: bigint;
  rkey: number;
  dmaLen: number;
}
export const rethVaAt = (b: Uint8Array, o: number): bigint => u64At(b, o);
export const rethRkeyAt = (b: Uint8Array, o: number): number => u32At(b, o + 8);
export const rethDmaLenAt = (b: Uint8Array, o: number): number => u32At(b, o + 12);
export function setRethAt(b: Uint8Array, o: number, h: Reth): void {
  setU64At(b, o, h.va);
  setU32At(b, o + 8, h.rkey);
  setU32At(b, o + 12, h.dmaLen);
}
export const rethVa = (p: PacketView): bigint => rethVaAt(p.bytes, at(p, Hdr.Reth));
export const rethRkey = (p: PacketView): number => rethRkeyAt(p.bytes, at(p, Hdr.Reth));
export const rethDmaLen = (p: PacketView): number => rethDmaLenAt(p.bytes, at(p, Hdr.Reth));

// ---------------------------------------------------------------------------------------------
// AETH: ACK extended transport header (IBTA 9.3.5), 4 bytes: 0 Syndrome:8 | 1-3 MSN:24
// Syndrome: bit 7 reserved, bits 6-5 type (00 ACK, 01 RNR NAK, 11 NAK), bits 4-0 the value
// (ACK: credit count, 0x1f = invalid; RNR NAK: RNR timer code; NAK: NakCode).
// ---------------------------------------------------------------------------------------------

export interface Aeth {
  syndrome: number;
  msn: number;
}
export enum AethType {
  Ack = 0,
  RnrNak = 1,
  Nak = 3,
}
/** NAK codes (IBTA 9.7.5.2.8 table 43). */
export enum NakCode {
  PsnSequenceError = 0,
  InvalidRequest = 1,
  RemoteAccessError = 2,
  RemoteOperationalError = 3,
  InvalidRdRequest = 4,
}
/** ACK credit count meaning "no end-to-end flow control". */
export const AETH_CREDITS_INVALID = 0x1f;

export const aethSyndrome = (type: AethType, value: number): number => ((type & 3) << 5) | (value & 0x1f);
export const aethTypeOf = (syndrome: number): number => (syndrome >>> 5) & 3;
export const aethValueOf = (syndrome: number): number => syndrome & 0x1f;

export const aethSyndromeAt = (b: Uint8Array, o: number): number => b[o];
export const aethMsnAt = (b: Uint8Array, o: number): number => u24At(b, o + 1);
export function setAethAt(b: Uint8Array, o: number, h: Aeth): void {
  b[o] = h.syndrome;
  setU24At(b, o + 1, h.msn);
}
export const aethSyndromeOf = (p: PacketView): number => aethSyndromeAt(p.bytes, at(p, Hdr.Aeth));
export const aethMsn = (p: PacketView): number => aethMsnAt(p.bytes, at(p, Hdr.Aeth));

// ---------------------------------------------------------------------------------------------
// AtomicETH: atomic extended transport header (IBTA 9.3.4), 28 bytes:
//   0 VA:64 | 8 R_Key | 12 Swap (or Add) Data:64 | 20 Compare Data:64
// ---------------------------------------------------------------------------------------------

export interface AtomicEth {
  va: bigint;
  rkey: number;
  swapAdd: bigint;
  compare: bigint;
}
export const atomicEthVaAt = (b: Uint8Array, o: number): bigint => u64At(b, o);
export const atomicEthRkeyAt = (b: Uint8Array, o: number): number => u32At(b, o + 8);
export const atomicEthSwapAddAt = (b: Uint8Array, o: number): bigint => u64At(b, o + 12);
export const atomicEthCompareAt = (b: Uint8Array, o: number): bigint => u64At(b, o + 20);
export function setAtomicEthAt(b: Uint8Array, o: number, h: AtomicEth): void {
  setU64At(b, o, h.va);
  setU32At(b, o + 8, h.rkey);
  setU64At(b, o + 12, h.swapAdd);
  setU64At(b, o + 20, h.compare);
}
export const atomicEthVa = (p: PacketView): bigint => atomicEthVaAt(p.bytes, at(p, Hdr.AtomicEth));
export const atomicEthRkey = (p: PacketView): number => atomicEthRkeyAt(p.bytes, at(p, Hdr.AtomicEth));
export const atomicEthSwapAdd = (p: PacketView): bigint => atomicEthSwapAddAt(p.bytes, at(p, Hdr.AtomicEth));
export const atomicEthCompare = (p: PacketView): bigint => atomicEthCompareAt(p.bytes, at(p, Hdr.AtomicEth));

// ---------------------------------------------------------------------------------------------
// AtomicAckETH: atomic ACK extended transport header (IBTA 9.5.3), 8 bytes: 0 OrigRemDt:64
// ---------------------------------------------------------------------------------------------

export const atomicAckOrigAt = (b: Uint8Array, o: number): bigint => u64At(b, o);
export const setAtomicAckOrigAt = (b: Uint8Array, o: number, orig: bigint): void => setU64At(b, o, orig);
export const atomicAckOrig = (p: PacketView): bigint => atomicAckOrigAt(p.bytes, at(p, Hdr.AtomicAckEth));

// ---------------------------------------------------------------------------------------------
// ImmDt: immediate data (IBTA 9.3.6), 4 bytes, opaque to the transport
// ---------------------------------------------------------------------------------------------

export const immDtAt = (b: Uint8Array, o: number): number => u32At(b, o);
export const setImmDtAt = (b: Uint8Array, o: number, imm: number): void => setU32At(b, o, imm);
export const immDt = (p: PacketView): number => immDtAt(p.bytes, at(p, Hdr.ImmDt));

// ---------------------------------------------------------------------------------------------
// IETH: invalidate extended transport header (IBTA 9.3.7), 4 bytes: the R_Key to invalidate
// ---------------------------------------------------------------------------------------------

export const iethRkeyAt = (b: Uint8Array, o: number): number => u32At(b, o);
export const setIethRkeyAt = (b: Uint8Array, o: number, rkey: number): void => setU32At(b, o, rkey);
export const iethRkey = (p: PacketView): number => iethRkeyAt(p.bytes, at(p, Hdr.Ieth));

// ---------------------------------------------------------------------------------------------
// DETH: datagram extended transport header (IBTA 9.3.2), 8 bytes: 0 Q_Key | 4 resv:8 | 5-7 SrcQP
// ---------------------------------------------------------------------------------------------

export interface Deth {
  qkey: number;
  srcQp: number;
}
export const dethQkeyAt = (b: Uint8Array, o: number): number => u32At(b, o);
export const dethSrcQpAt = (b: Uint8Array, o: number): number => u24At(b, o + 5);
export function setDethAt(b: Uint8Array, o: number, h: Deth): void {
  setU32At(b, o, h.qkey);
  b[o + 4] = 0;
  setU24At(b, o + 5, h.srcQp);
}
export const dethQkey = (p: PacketView): number => dethQkeyAt(p.bytes, at(p, Hdr.Deth));
export const dethSrcQp = (p: PacketView): number => dethSrcQpAt(p.bytes, at(p, Hdr.Deth));
