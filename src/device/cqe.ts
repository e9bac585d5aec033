// The 64-byte CQE (docs/device-spec.md §11.1) and the translation of the verbs layer's work
// completions into it (§11.2: the spec's compact status and opcode numbers, its wc_flags bits).
import { type WorkCompletion } from '../nic/verbs.js';
import { WcFlags, WcOpcode, WcStatus, WrOpcode } from '../nic/types.js';
import { CQE_BYTES, CqeFlag, CqeOpcode, CqeStatus, NETWORK_HDR_ROCE_V2_IPV4 } from './abi.js';
import { setU64, u64 } from './bytes.js';

export interface Cqe {
  wrId: bigint;
  status: CqeStatus;
  opcode: CqeOpcode;
  networkHdrType: number;
  sl: number;
  vendorErr: number;
  byteLen: number;
  /** ImmDt as a big-endian u32 (its 4 bytes in network order), or the invalidated rkey. */
  immData: number;
  qpNum: number;
  srcQp: number;
  wcFlags: number;
  pkeyIndex: number;
  slid: number;
  dlidPathBits: number;
  smac: Uint8Array;
}

const STATUS_FROM_VERBS = new Map<WcStatus, CqeStatus>([
  [WcStatus.Success, CqeStatus.Success],
  [WcStatus.LocLenErr, CqeStatus.LocLenErr],
  [WcStatus.LocQpOpErr, CqeStatus.LocQpOpErr],
  [WcStatus.LocProtErr, CqeStatus.LocProtErr],
  [WcStatus.WrFlushErr, CqeStatus.WrFlushErr],
  [WcStatus.BadRespErr, CqeStatus.BadRespErr],
  [WcStatus.LocAccessErr, CqeStatus.LocAccessErr],
  [WcStatus.RemInvReqErr, CqeStatus.RemInvReqErr],
  [WcStatus.RemAccessErr, CqeStatus.RemAccessErr],
  [WcStatus.RemOpErr, CqeStatus.RemOpErr],
  [WcStatus.RetryExcErr, CqeStatus.RetryExcErr],
  [WcStatus.RnrRetryExcErr, CqeStatus.RnrRetryExcErr],
  [WcStatus.FatalErr, CqeStatus.FatalErr],
  [WcStatus.RespTimeoutErr, CqeStatus.RespTimeoutErr],
  [WcStatus.GeneralErr, CqeStatus.GeneralErr],
]);

const OPCODE_FROM_VERBS = new Map<WcOpcode, CqeOpcode>([
  [WcOpcode.Send, CqeOpcode.Send],
  [WcOpcode.RdmaWrite, CqeOpcode.RdmaWrite],
  [WcOpcode.RdmaRead, CqeOpcode.RdmaRead],
  [WcOpcode.CompSwap, CqeOpcode.CompSwap],
  [WcOpcode.FetchAdd, CqeOpcode.FetchAdd],
  [WcOpcode.LocalInv, CqeOpcode.LocalInv],
  [WcOpcode.Recv, CqeOpcode.Recv],
  [WcOpcode.RecvRdmaWithImm, CqeOpcode.RecvRdmaWithImm],
]);

/** The completion opcode of a send work request (§11.2, "For" column). */
export function sendCqeOpcode(op: WrOpcode): CqeOpcode {
  switch (op) {
    case WrOpcode.RdmaWrite:
    case WrOpcode.RdmaWriteWithImm: return CqeOpcode.RdmaWrite;
    case WrOpcode.RdmaRead: return CqeOpcode.RdmaRead;
    case WrOpcode.AtomicCmpAndSwp: return CqeOpcode.CompSwap;
    case WrOpcode.AtomicFetchAndAdd: return CqeOpcode.FetchAdd;
    case WrOpcode.LocalInv: return CqeOpcode.LocalInv;
    default: return CqeOpcode.Send;
  }
}

/**
 * The smac of every CQE the device makes: it never sets WITH_SMAC, so nobody reads it (and
 * nobody writes it), and one zeroed array serves them all rather than one per completion.
 */
const NO_SMAC = new Uint8Array(6);

/** A CQE the device makes itself (malformed WQE, flush). */
export function deviceCqe(wrId: bigint, status: CqeStatus, opcode: CqeOpcode, vendorErr: number, qpNum: number): Cqe {
  return {
    wrId, status, opcode, networkHdrType: 0, sl: 0, vendorErr, byteLen: 0, immData: 0, qpNum, srcQp: 0, wcFlags: 0,
    pkeyIndex: 0, slid: 0, dlidPathBits: 0, smac: NO_SMAC,
  };
}

/**
 * A provider completion as the guest sees it: `wrId` is the guest's, `ud` says the QP is UD/GSI
 * (its receives carry the RoCE v2 network header type, §11.1).
 */
export function cqeFromWc(wc: WorkCompletion, wrId: bigint, ud: boolean): Cqe {
  const status = STATUS_FROM_VERBS.get(wc.status) ?? CqeStatus.GeneralErr;
  const opcode = OPCODE_FROM_VERBS.get(wc.opcode) ?? CqeOpcode.Send;
  let flags = 0;
  if (wc.wcFlags & WcFlags.GRH) flags |= CqeFlag.GRH;
  if (wc.wcFlags & WcFlags.WITH_IMM) flags |= CqeFlag.WITH_IMM;
  if (wc.wcFlags & WcFlags.WITH_INV) flags |= CqeFlag.WITH_INV;
  const isRecv = opcode === CqeOpcode.Recv || opcode === CqeOpcode.RecvRdmaWithImm;
  let networkHdrType = 0;
  if (ud && isRecv && status === CqeStatus.Success) {
    networkHdrType = NETWORK_HDR_ROCE_V2_IPV4;
    flags |= CqeFlag.GRH | CqeFlag.WITH_NETWORK_HDR_TYPE;
  }
  return {
    wrId, status, opcode, networkHdrType, sl: wc.sl & 0xff, vendorErr: wc.vendorErr >>> 0, byteLen: wc.byteLen >>> 0,
    immData: wc.immData >>> 0, qpNum: wc.qpNum >>> 0, srcQp: wc.srcQp >>> 0, wcFlags: flags,
    pkeyIndex: wc.pkeyIndex & 0xffff, slid: wc.slid & 0xffff, dlidPathBits: wc.dlidPathBits & 0xff, smac: NO_SMAC,
  };
}

/** Encode into `out` (a fresh array by default); `v` is a view of out's first CQE_BYTES, if the caller keeps one. */
export function encodeCqe(c: Cqe, out: Uint8Array = new Uint8Array(CQE_BYTES), v: DataView = new DataView(out.buffer, out.byteOffset, CQE_BYTES)): Uint8Array {
  out.fill(0, 0, CQE_BYTES);
  setU64(v, 0, c.wrId);
  v.setUint8(8, c.status);
  v.setUint8(9, c.opcode);
  v.setUint8(10, c.networkHdrType);
  v.setUint8(11, c.sl);
  v.setUint32(12, c.vendorErr, true);
  v.setUint32(16, c.byteLen, true);
  // ImmDt bytes go out in network order as received; an invalidated key is a plain le32.
  if (c.wcFlags & CqeFlag.WITH_INV) v.setUint32(20, c.immData, true);
  else v.setUint32(20, c.immData, false);
  v.setUint32(24, c.qpNum, true);
  v.setUint32(28, c.srcQp, true);
  v.setUint32(32, c.wcFlags, true);
  v.setUint16(36, c.pkeyIndex, true);
  v.setUint16(38, c.slid, true);
  v.setUint8(40, c.dlidPathBits);
  if (c.wcFlags & CqeFlag.WITH_SMAC) out.set(c.smac.subarray(0, 6), 42);
  return out;
}

export function decodeCqe(bytes: Uint8Array): Cqe {
  if (bytes.length < CQE_BYTES) throw new RangeError(`a CQE is ${CQE_BYTES} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, CQE_BYTES);
  const wcFlags = v.getUint32(32, true);
  return {
    wrId: u64(v, 0),
    status: v.getUint8(8),
    opcode: v.getUint8(9),
    networkHdrType: v.getUint8(10),
    sl: v.getUint8(11),
    vendorErr: v.getUint32(12, true),
    byteLen: v.getUint32(16, true),
    immData: v.getUint32(20, (wcFlags & CqeFlag.WITH_INV) !== 0),
    qpNum: v.getUint32(24, true),
    srcQp: v.getUint32(28, true),
    wcFlags,
    pkeyIndex: v.getUint16(36, true),
    slid: v.getUint16(38, true),
    dlidPathBits: v.getUint8(40),
    smac: bytes.slice(42, 48),
  };
}
