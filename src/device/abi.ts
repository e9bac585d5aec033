// The numbers of the virtio-rdma interface (docs/device-spec.md), one source for both sides: the
// device (src/device) and the guest library (src/guest/rdma) import them from here. Layout codecs
// live in structs.ts and cqe.ts; this file holds only values.

/** §2: the device ID reserved for RDMA in virtio 1.2 §5. */
export const VIRTIO_ID_RDMA = 42;

/** §3.1: transport feature bits the device offers. */
export const VIRTIO_F_RING_RESET = 40;

/** §3.2: device feature bits. */
export const RdmaFeature = {
  PHYS_MR: 0,
  ALL_MEMORY: 1,
  ODP: 2,
  SRQ: 3,
  UD: 4,
  INLINE: 5,
  ATOMIC: 6,
  EVENTQ: 7,
} as const;

export const featureBit = (bit: number): bigint => 1n << BigInt(bit);

/** §6: control framing. */
export const CTRL_HEADER_BYTES = 8;

/** §7: command numbers (0–17 RFC-2022b's, 32 on vrdma's). */
export enum Cmd {
  QueryDevice = 0,
  QueryPort = 1,
  CreateCq = 2,
  DestroyCq = 3,
  CreatePd = 4,
  DestroyPd = 5,
  GetDmaMr = 6,
  RegUserMr = 7,
  DeregMr = 8,
  CreateQp = 9,
  ModifyQp = 10,
  QueryQp = 11,
  DestroyQp = 12,
  CreateAh = 13,
  DestroyAh = 14,
  AddGid = 15,
  DelGid = 16,
  ReqNotifyCq = 17,
  RegPhysMr = 32,
  ReregPhysMr = 33,
  CreateSrq = 34,
  ModifySrq = 35,
  QuerySrq = 36,
  DestroySrq = 37,
  AdviseMr = 38,
}

/**
 * §7 table: fixed request bytes, response bytes, the feature the command needs (or -1), and the
 * size of one element of a variable tail (0 if the command has none).
 */
export interface CommandShape {
  request: number;
  response: number;
  feature: number;
  tailElement: number;
}

export const COMMANDS: ReadonlyMap<Cmd, CommandShape> = new Map<Cmd, CommandShape>([
  [Cmd.QueryDevice, { request: 0, response: 128, feature: -1, tailElement: 0 }],
  [Cmd.QueryPort, { request: 0, response: 32, feature: -1, tailElement: 0 }],
  [Cmd.CreateCq, { request: 8, response: 16, feature: -1, tailElement: 0 }],
  [Cmd.DestroyCq, { request: 4, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.CreatePd, { request: 0, response: 4, feature: -1, tailElement: 0 }],
  [Cmd.DestroyPd, { request: 4, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.GetDmaMr, { request: 8, response: 12, feature: -1, tailElement: 0 }],
  [Cmd.RegUserMr, { request: 32, response: 12, feature: -1, tailElement: 8 }],
  [Cmd.DeregMr, { request: 4, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.CreateQp, { request: 56, response: 32, feature: -1, tailElement: 0 }],
  [Cmd.ModifyQp, { request: 128, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.QueryQp, { request: 8, response: 120, feature: -1, tailElement: 0 }],
  [Cmd.DestroyQp, { request: 4, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.CreateAh, { request: 48, response: 4, feature: -1, tailElement: 0 }],
  [Cmd.DestroyAh, { request: 8, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.AddGid, { request: 24, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.DelGid, { request: 4, response: 0, feature: -1, tailElement: 0 }],
  [Cmd.ReqNotifyCq, { request: 8, response: 4, feature: -1, tailElement: 0 }],
  [Cmd.RegPhysMr, { request: 48, response: 16, feature: RdmaFeature.PHYS_MR, tailElement: 8 }],
  [Cmd.ReregPhysMr, { request: 56, response: 8, feature: RdmaFeature.PHYS_MR, tailElement: 8 }],
  [Cmd.CreateSrq, { request: 16, response: 16, feature: RdmaFeature.SRQ, tailElement: 0 }],
  [Cmd.ModifySrq, { request: 16, response: 0, feature: RdmaFeature.SRQ, tailElement: 0 }],
  [Cmd.QuerySrq, { request: 4, response: 16, feature: RdmaFeature.SRQ, tailElement: 0 }],
  [Cmd.DestroySrq, { request: 4, response: 0, feature: RdmaFeature.SRQ, tailElement: 0 }],
  [Cmd.AdviseMr, { request: 16, response: 0, feature: RdmaFeature.ODP, tailElement: 16 }],
]);

/** §6.1 status codes. */
export enum RdmaStatus {
  Ok = 0,
  InvalidArg = 1,
  NotSupported = 2,
  NoResources = 3,
  BadHandle = 4,
  Busy = 5,
  Exists = 6,
  AccessDenied = 7,
  Fault = 8,
  DeviceError = 9,
}

/** §7.1 access flags: the spec adopts verbs.h's values, so they are the verbs layer's constants. */
export { Access as AccessFlag, ACCESS_ALL as ACCESS_KNOWN } from '../nic/types.js';

/** §7.10 qp_type values (verbs.h ibv_qp_type). */
export const QpTypeCode = { SMI: 0, GSI: 1, RC: 2, UC: 3, UD: 4 } as const;
export const CREATE_QP_F_USE_SRQ = 1;
export const GSI_QPN = 1;

/** §7.11 attribute mask bits (RFC-2022b's 0–16, vrdma's 17–19). */
export const AttrMask = {
  STATE: 1 << 0,
  CUR_STATE: 1 << 1,
  ACCESS_FLAGS: 1 << 2,
  QKEY: 1 << 3,
  AV: 1 << 4,
  PATH_MTU: 1 << 5,
  TIMEOUT: 1 << 6,
  RETRY_CNT: 1 << 7,
  RNR_RETRY: 1 << 8,
  RQ_PSN: 1 << 9,
  MAX_QP_RD_ATOMIC: 1 << 10,
  MIN_RNR_TIMER: 1 << 11,
  SQ_PSN: 1 << 12,
  MAX_DEST_RD_ATOMIC: 1 << 13,
  CAP: 1 << 14,
  DEST_QPN: 1 << 15,
  RATE_LIMIT: 1 << 16,
  PKEY_INDEX: 1 << 17,
  PORT: 1 << 18,
  EN_SQD_ASYNC_NOTIFY: 1 << 19,
} as const;
export const ATTR_MASK_KNOWN = (1 << 20) - 1;

/** §7.17 REQ_NOTIFY_CQ flags. */
export const NotifyFlag = { SOLICITED: 1, NEXT_COMPLETION: 2 } as const;

/** §7.18 REG_PHYS_MR flags. */
export const PhysMrFlag = { INDIRECT: 1, INVALIDATABLE: 2 } as const;
/** §7.19 rereg flags (verbs.h). */
export const ReregFlag = { CHANGE_TRANSLATION: 1, CHANGE_PD: 2, CHANGE_ACCESS: 4 } as const;

/** §7.20 MODIFY_SRQ mask (verbs.h ibv_srq_attr_mask). */
export const SrqAttr = { MAX_WR: 1, LIMIT: 2 } as const;

/** §7.21 ADVISE_MR. */
export const ADVISE_MAX_SGE = 16;
export const AdviseFlag = { FLUSH: 1 } as const;

/** §10: work requests. */
export const SGE_BYTES = 16;
export const SEND_WQE_HEADER_BYTES = 64;
export const RECV_WQE_HEADER_BYTES = 16;

/** §10.3 send opcodes (verbs.h ibv_wr_opcode). */
export { WrOpcode as SendOpcode, SendFlags as SendFlag } from '../nic/types.js';
export const SEND_FLAGS_KNOWN = 0x0f;
/** §10.2: remote_qkey bit 31 asks for the QP's own Q_Key. */
export const UD_USE_QP_QKEY = 0x80000000;

/** §11.1 */
export const CQE_BYTES = 64;

/** §11.2 completion statuses (RFC-2022b's compact numbers). */
export enum CqeStatus {
  Success = 0,
  LocLenErr = 1,
  LocQpOpErr = 2,
  LocProtErr = 3,
  WrFlushErr = 4,
  BadRespErr = 5,
  LocAccessErr = 6,
  RemInvReqErr = 7,
  RemAccessErr = 8,
  RemOpErr = 9,
  RetryExcErr = 10,
  RnrRetryExcErr = 11,
  RemAbortErr = 12,
  FatalErr = 13,
  RespTimeoutErr = 14,
  GeneralErr = 15,
}

/** §11.2 completion opcodes. */
export enum CqeOpcode {
  Send = 0,
  RdmaWrite = 1,
  RdmaRead = 2,
  Recv = 3,
  RecvRdmaWithImm = 4,
  CompSwap = 5,
  FetchAdd = 6,
  LocalInv = 7,
}

/** §11.1 wc_flags. */
export const CqeFlag = { GRH: 1, WITH_IMM: 2, WITH_INV: 4, WITH_SMAC: 8, WITH_NETWORK_HDR_TYPE: 16 } as const;
/** §11.1 network_hdr_type: RoCE v2 over IPv4 (Linux rdma_network_type). */
export const NETWORK_HDR_ROCE_V2_IPV4 = 2;

/** §10.3 and §11.5 vendor_err codes. */
export const VendorErr = {
  NONE: 0,
  SHORT_WQE: 1,
  BAD_OPCODE: 2,
  BAD_FLAGS: 3,
  BAD_SGE_COUNT: 4,
  INLINE_TOO_LONG: 5,
  BAD_AH: 6,
  MSG_TOO_LONG: 7,
  SGE_PROTECTION: 8,
  BAD_INVALIDATE: 9,
  RECV_MALFORMED: 10,
  RECV_TOO_SMALL: 11,
  FLUSH_QP_ERR: 12,
  FLUSH_CQ_OVERRUN: 13,
  /** remote_addr at or above 2^53: this host's verbs layer cannot address it. */
  REMOTE_ADDR: 14,
} as const;

/** §12 event types (verbs.h ibv_event_type). */
export enum EventType {
  CqErr = 0,
  QpFatal = 1,
  QpReqErr = 2,
  QpAccessErr = 3,
  CommEst = 4,
  SqDrained = 5,
  PortActive = 9,
  PortErr = 10,
  SrqErr = 14,
  SrqLimitReached = 15,
  QpLastWqeReached = 16,
}
export const EVENT_BYTES = 16;

/** §9.1 device_cap_flags. */
export const DeviceCap = { RC_RNR_NAK_GEN: 1, SRQ_LIMIT: 2, PORT_ACTIVE_EVENT: 4, ON_DEMAND_PAGING: 8 } as const;
