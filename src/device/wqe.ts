// Decoding work requests from descriptor chains (docs/device-spec.md §10.2–§10.4) into the verbs
// layer's SendWr / RecvWr, with the WQE checks of §10.3 in table order. The chain is read once
// into a private copy and every check runs on the copy (§14). A malformed WQE is not an error of
// the ring: it becomes a completion error with the spec's vendor_err.
import { mtuBytes, type PathMtu, SendFlags, WrOpcode } from '../nic/types.js';
import type { RecvWr, SendWr, Sge } from '../nic/verbs.js';
import type { DescriptorChain } from '../virtio/chain.js';
import {
  CqeStatus, RECV_WQE_HEADER_BYTES, RdmaFeature, SEND_FLAGS_KNOWN, SEND_WQE_HEADER_BYTES, SGE_BYTES, SendFlag, SendOpcode, UD_USE_QP_QKEY,
  VendorErr,
} from './abi.js';
import { u64, u64n } from './bytes.js';
import type { DeviceCore, QpObj } from './core.js';

export interface WqeError {
  status: CqeStatus;
  vendorErr: number;
}

export type Decoded<T> = { ok: true; wr: T; wrId: bigint; signaled: boolean; lkeys: number[] } | { ok: false; wrId: bigint; opcode: number; error: WqeError };

const INLINE_OPCODES = new Set<number>([SendOpcode.RdmaWrite, SendOpcode.RdmaWriteWithImm, SendOpcode.Send, SendOpcode.SendWithImm, SendOpcode.SendWithInv]);
const UD_OPCODES = new Set<number>([SendOpcode.Send, SendOpcode.SendWithImm, SendOpcode.LocalInv]);
const ALL_OPCODES = new Set<number>(Object.values(SendOpcode).filter((v): v is number => typeof v === 'number'));

const fail = (wrId: bigint, opcode: number, status: CqeStatus, vendorErr: number): Decoded<never> => ({ ok: false, wrId, opcode, error: { status, vendorErr } });

// The private copy of a WQE's header and SGE list (§14) goes into scratch reused from one WQE to
// the next: decoding is synchronous and keeps nothing of it but the values it reads out. (Inline
// data is kept by the work request, so it gets a copy of its own.) Bytes past what the current
// WQE's chain holds are stale; the checks read only what was copied.
const HEADER = new Uint8Array(SEND_WQE_HEADER_BYTES);
const HEADER_VIEW = new DataView(HEADER.buffer);
let sges = new Uint8Array(16 * SGE_BYTES);
let sgeView = new DataView(sges.buffer);

/** The SGE scratch, grown to hold `bytes`. */
function sgeScratch(bytes: number): Uint8Array {
  if (bytes > sges.length) {
    sges = new Uint8Array(Math.max(bytes, 2 * sges.length));
    sgeView = new DataView(sges.buffer);
  }
  return sges;
}

function opcodeAllowed(core: DeviceCore, qp: QpObj, op: number): boolean {
  if (!ALL_OPCODES.has(op)) return false;
  if (qp.kind !== 'rc' && !UD_OPCODES.has(op)) return false;
  if ((op === SendOpcode.AtomicCmpAndSwp || op === SendOpcode.AtomicFetchAndAdd) && !core.has(RdmaFeature.ATOMIC)) return false;
  if ((op === SendOpcode.LocalInv || op === SendOpcode.SendWithInv) && !core.has(RdmaFeature.PHYS_MR)) return false;
  return true;
}

function readSges(body: DataView, off: number, n: number): Sge[] | null {
  const out: Sge[] = [];
  for (let i = 0; i < n; i++) {
    const addr = u64n(body, off + i * SGE_BYTES);
    // No MR reaches 2^53 (registrations end below it), so such an SGE fails the MR checks.
    if (addr < 0) return null;
    out.push({ addr, length: body.getUint32(off + i * SGE_BYTES + 8, true), lkey: body.getUint32(off + i * SGE_BYTES + 12, true) });
  }
  return out;
}

/** Decode a send WQE for `qp`; `seq` becomes the provider's wrId. */
export function decodeSendWqe(core: DeviceCore, qp: QpObj, chain: DescriptorChain, memory: Uint8Array, seq: number): Decoded<SendWr> {
  const reader = chain.reader(memory);
  const headerLen = Math.min(SEND_WQE_HEADER_BYTES, chain.readBytes);
  reader.readInto(HEADER, headerLen);
  const hv = HEADER_VIEW;
  const wrId = headerLen >= 8 ? u64(hv, 0) : 0n;
  const opcode = headerLen >= 9 ? hv.getUint8(8) : 0;
  if (headerLen < SEND_WQE_HEADER_BYTES) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.SHORT_WQE);
  const flags = hv.getUint8(9);
  const numSge = hv.getUint16(10, true);
  const inlineLen = hv.getUint32(16, true);
  const isInline = (flags & SendFlag.INLINE) !== 0;
  if (!opcodeAllowed(core, qp, opcode)) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_OPCODE);
  if ((flags & ~SEND_FLAGS_KNOWN) !== 0 || (isInline && (!core.has(RdmaFeature.INLINE) || numSge !== 0 || !INLINE_OPCODES.has(opcode)))) {
    return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_FLAGS);
  }
  const atomic = opcode === SendOpcode.AtomicCmpAndSwp || opcode === SendOpcode.AtomicFetchAndAdd;
  const sgeLimit = opcode === SendOpcode.RdmaRead ? Math.min(qp.cap.maxSendSge, core.config.maxSgeRd) : qp.cap.maxSendSge;
  if (numSge > sgeLimit || (atomic && numSge !== 1)) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_SGE_COUNT);
  if (isInline && inlineLen > qp.cap.maxInlineData) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.INLINE_TOO_LONG);
  let inline: Uint8Array | null = null;
  let sgList: Sge[] | null = [];
  if (isInline) {
    inline = reader.readExact(inlineLen);
    if (inline === null) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.SHORT_WQE);
  } else {
    if (!reader.readInto(sgeScratch(numSge * SGE_BYTES), numSge * SGE_BYTES)) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.SHORT_WQE);
    sgList = readSges(sgeView, 0, numSge);
  }
  if (sgList === null) return fail(wrId, opcode, CqeStatus.LocProtErr, VendorErr.SGE_PROTECTION);
  if (atomic && sgList[0].length !== 8) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_SGE_COUNT);
  const wr: SendWr = { wrId: BigInt(seq), opcode: opcode as number as WrOpcode, flags: (flags & ~SendFlag.SIGNALED) | SendFlags.SIGNALED, sgList };
  if (inline !== null) wr.inline = inline;
  if (opcode === SendOpcode.RdmaWriteWithImm || opcode === SendOpcode.SendWithImm) wr.immData = hv.getUint32(12, false);
  if (opcode === SendOpcode.SendWithInv || opcode === SendOpcode.LocalInv) wr.invalidateRkey = hv.getUint32(12, true);
  if (qp.kind !== 'rc') {
    const ah = core.ahs.get(hv.getUint32(24, true));
    if (opcode !== SendOpcode.LocalInv) {
      if (ah === undefined || ah.pd !== qp.pd) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_AH);
      const qkey = hv.getUint32(32, true);
      wr.ah = ah.verbsAh;
      wr.remoteQpn = hv.getUint32(28, true) & 0xffffff;
      wr.remoteQkey = qkey & UD_USE_QP_QKEY ? qp.qkey : qkey;
    }
  } else if (opcode === SendOpcode.RdmaWrite || opcode === SendOpcode.RdmaWriteWithImm || opcode === SendOpcode.RdmaRead) {
    const remote = u64n(hv, 24);
    if (remote < 0) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.REMOTE_ADDR);
    wr.remoteAddr = remote;
    wr.rkey = hv.getUint32(32, true);
  } else if (atomic) {
    const remote = u64n(hv, 24);
    if (remote < 0) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.REMOTE_ADDR);
    wr.remoteAddr = remote;
    wr.compareAdd = u64(hv, 32);
    wr.swap = u64(hv, 40);
    wr.rkey = hv.getUint32(48, true);
  }
  const msgBytes = isInline ? inlineLen : sgList.reduce((sum, s) => sum + s.length, 0);
  if (msgBytes > core.config.maxMsgSz) return fail(wrId, opcode, CqeStatus.LocLenErr, VendorErr.MSG_TOO_LONG);
  if (qp.kind !== 'rc' && msgBytes > mtuBytes(core.config.activeMtu as PathMtu)) return fail(wrId, opcode, CqeStatus.LocLenErr, VendorErr.MSG_TOO_LONG);
  if (opcode === SendOpcode.LocalInv) {
    const mr = core.mrByKey(wr.invalidateRkey as number);
    if (mr === undefined || mr.pd !== qp.pd || !mr.invalidatable) return fail(wrId, opcode, CqeStatus.LocQpOpErr, VendorErr.BAD_INVALIDATE);
  }
  const signaled = qp.sigAll || (flags & SendFlag.SIGNALED) !== 0;
  return { ok: true, wr, wrId, signaled, lkeys: sgList.map((s) => s.lkey) };
}

/** Decode a receive WQE (recvq or srqq) whose SGE limit is `maxSge`. */
export function decodeRecvWqe(chain: DescriptorChain, memory: Uint8Array, maxSge: number, seq: number): Decoded<RecvWr> {
  const reader = chain.reader(memory);
  const headerLen = Math.min(RECV_WQE_HEADER_BYTES, chain.readBytes);
  reader.readInto(HEADER, headerLen);
  const hv = HEADER_VIEW;
  const wrId = headerLen >= 8 ? u64(hv, 0) : 0n;
  if (headerLen < RECV_WQE_HEADER_BYTES) return fail(wrId, 0, CqeStatus.LocQpOpErr, VendorErr.RECV_MALFORMED);
  const numSge = hv.getUint16(8, true);
  if (numSge > maxSge) return fail(wrId, 0, CqeStatus.LocQpOpErr, VendorErr.RECV_MALFORMED);
  if (!reader.readInto(sgeScratch(numSge * SGE_BYTES), numSge * SGE_BYTES)) return fail(wrId, 0, CqeStatus.LocQpOpErr, VendorErr.RECV_MALFORMED);
  const sgList = readSges(sgeView, 0, numSge);
  if (sgList === null) return fail(wrId, 0, CqeStatus.LocProtErr, VendorErr.SGE_PROTECTION);
  return { ok: true, wr: { wrId: BigInt(seq), sgList }, wrId, signaled: true, lkeys: sgList.map((s) => s.lkey) };
}
