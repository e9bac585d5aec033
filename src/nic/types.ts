// Values of the verbs interface, numbered as libibverbs numbers them (verbs.h), so a guest
// driver and the ibverbs provider can pass them through unchanged.

import { MR_LOCAL_WRITE, MR_ON_DEMAND, MR_REMOTE_ATOMIC, MR_REMOTE_READ, MR_REMOTE_WRITE } from '../../assembly/mr-abi.js';

/**
 * Memory access rights (enum ibv_access_flags). Local read is always allowed. The values are
 * defined once, in assembly/mr-abi.ts, which the translation kernel shares.
 */
export const Access = {
  LOCAL_WRITE: MR_LOCAL_WRITE,
  REMOTE_WRITE: MR_REMOTE_WRITE,
  REMOTE_READ: MR_REMOTE_READ,
  REMOTE_ATOMIC: MR_REMOTE_ATOMIC,
  /** On-demand paging: pages need not be present at registration (R3). */
  ON_DEMAND: MR_ON_DEMAND,
} as const;

export const ACCESS_ALL = Object.values(Access).reduce((a, b) => a | b, 0);

/** Work request opcodes (enum ibv_wr_opcode). */
export enum WrOpcode {
  RdmaWrite = 0,
  RdmaWriteWithImm = 1,
  Send = 2,
  SendWithImm = 3,
  RdmaRead = 4,
  AtomicCmpAndSwp = 5,
  AtomicFetchAndAdd = 6,
  LocalInv = 7,
  SendWithInv = 9,
}

/** Send flags (enum ibv_send_flags). */
export const SendFlags = {
  FENCE: 1 << 0,
  SIGNALED: 1 << 1,
  SOLICITED: 1 << 2,
  INLINE: 1 << 3,
} as const;

/** Completion statuses (enum ibv_wc_status; IBTA vol. 1, 11.6.2). */
export enum WcStatus {
  Success = 0,
  LocLenErr = 1,
  LocQpOpErr = 2,
  LocProtErr = 4,
  WrFlushErr = 5,
  BadRespErr = 7,
  LocAccessErr = 8,
  RemInvReqErr = 9,
  RemAccessErr = 10,
  RemOpErr = 11,
  RetryExcErr = 12,
  RnrRetryExcErr = 13,
  FatalErr = 19,
  RespTimeoutErr = 20,
  GeneralErr = 21,
}

/** Completion opcodes (enum ibv_wc_opcode). */
export enum WcOpcode {
  Send = 0,
  RdmaWrite = 1,
  RdmaRead = 2,
  CompSwap = 3,
  FetchAdd = 4,
  LocalInv = 6,
  Recv = 128,
  RecvRdmaWithImm = 129,
}

/** Completion flags (enum ibv_wc_flags). */
export const WcFlags = {
  GRH: 1 << 0,
  WITH_IMM: 1 << 1,
  WITH_INV: 1 << 3,
} as const;

/** IBTA path MTU codes (enum ibv_mtu) and their sizes in bytes. */
export enum PathMtu {
  Mtu256 = 1,
  Mtu512 = 2,
  Mtu1024 = 3,
  Mtu2048 = 4,
  Mtu4096 = 5,
}

export function mtuBytes(mtu: PathMtu): number {
  return 128 << mtu;
}

/** The completion opcode of a send work request (IBTA: a WRITE with immediate completes as a WRITE). */
export function wcOpcodeOf(op: WrOpcode): WcOpcode {
  switch (op) {
    case WrOpcode.RdmaWrite:
    case WrOpcode.RdmaWriteWithImm:
      return WcOpcode.RdmaWrite;
    case WrOpcode.RdmaRead:
      return WcOpcode.RdmaRead;
    case WrOpcode.AtomicCmpAndSwp:
      return WcOpcode.CompSwap;
    case WrOpcode.AtomicFetchAndAdd:
      return WcOpcode.FetchAdd;
    case WrOpcode.LocalInv:
      return WcOpcode.LocalInv;
    default:
      return WcOpcode.Send;
  }
}
