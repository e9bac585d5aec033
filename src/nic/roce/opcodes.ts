// The opcode table (IBTA vol. 1 9.2 table 38 for the numbers, 9.3-9.5 and table 39 for the
// headers each opcode carries). Parsing and building read this table; nothing else in the wire
// layer branches on opcodes. Extended headers follow the BTH in the IBTA order
// DETH, RETH, AtomicETH, AETH, AtomicAckETH, ImmDt/IETH; their offsets are derived from it here.

/** Extended headers, in the order they follow the BTH. */
export enum Hdr {
  Deth,
  Reth,
  AtomicEth,
  Aeth,
  AtomicAckEth,
  ImmDt,
  Ieth,
}
export const HDR_COUNT = 7;
export const BTH_BYTES = 12;
/** Bytes of each extended header, indexed by Hdr. */
export const HDR_BYTES: readonly number[] = [8, 16, 28, 4, 8, 4, 4];
export const HDR_NAMES: readonly string[] = ['DETH', 'RETH', 'AtomicETH', 'AETH', 'AtomicAckETH', 'ImmDt', 'IETH'];

/** What an opcode is and does; bits of OpcodeInfo.flags. */
export const OpFlag = {
  /** Sent by a requester. */
  Request: 1 << 0,
  /** An RDMA READ response packet. */
  Response: 1 << 1,
  /** An acknowledgement: ACK/NAK or atomic ACK. */
  Ack: 1 << 2,
  /** First packet of a multi-packet message (with Last: the only packet). */
  First: 1 << 3,
  Middle: 1 << 4,
  Last: 1 << 5,
  /** Carries payload bytes (possibly zero of them). */
  Payload: 1 << 6,
  /** Consumes a receive WQE at the responder (SEND, RDMA WRITE with immediate). */
  RecvWqe: 1 << 7,
  /** Ends a message that completes a receive WQE (rxe's COMP_MASK). */
  Completes: 1 << 8,
  Immediate: 1 << 9,
  Invalidate: 1 << 10,
  Send: 1 << 11,
  Write: 1 << 12,
  Read: 1 << 13,
  Atomic: 1 << 14,
} as const;
export const ONLY = OpFlag.First | OpFlag.Last;

export type Transport = 'RC' | 'UD';

/** IBTA opcode numbers: transport prefix in the top 3 bits (RC 000, UD 011). */
export enum Opcode {
  RcSendFirst = 0x00,
  RcSendMiddle = 0x01,
  RcSendLast = 0x02,
  RcSendLastImm = 0x03,
  RcSendOnly = 0x04,
  RcSendOnlyImm = 0x05,
  RcWriteFirst = 0x06,
  RcWriteMiddle = 0x07,
  RcWriteLast = 0x08,
  RcWriteLastImm = 0x09,
  RcWriteOnly = 0x0a,
  RcWriteOnlyImm = 0x0b,
  RcReadRequest = 0x0c,
  RcReadResponseFirst = 0x0d,
  RcReadResponseMiddle = 0x0e,
  RcReadResponseLast = 0x0f,
  RcReadResponseOnly = 0x10,
  RcAck = 0x11,
  RcAtomicAck = 0x12,
  RcCompareSwap = 0x13,
  RcFetchAdd = 0x14,
  RcSendLastInv = 0x16,
  RcSendOnlyInv = 0x17,
  UdSendOnly = 0x64,
  UdSendOnlyImm = 0x65,
}

export interface OpcodeInfo {
  readonly opcode: Opcode;
  /** IBTA-style name for logs ("RC_SEND_ONLY"). */
  readonly name: string;
  readonly transport: Transport;
  /** OpFlag bits. */
  readonly flags: number;
  /** Bit (1 << Hdr) for each extended header present. */
  readonly headers: number;
  /** Byte offset from the BTH start of each extended header, indexed by Hdr; -1 when absent. */
  readonly offsets: readonly number[];
  /** BTH plus extended headers: where the payload starts. */
  readonly headerBytes: number;
}

const { Request: REQ, Response: RESP, Ack: ACK, First: FIRST, Middle: MIDDLE, Last: LAST, Payload: PAY } = OpFlag;
const { RecvWqe: RWQE, Completes: COMP, Immediate: IMM, Invalidate: INV, Send: SEND, Write: WRITE, Read: READ, Atomic: ATOMIC } = OpFlag;

type Row = [Opcode, string, Transport, Hdr[], number];

const ROWS: Row[] = [
  [Opcode.RcSendFirst, 'RC_SEND_FIRST', 'RC', [], REQ | SEND | FIRST | PAY | RWQE],
  [Opcode.RcSendMiddle, 'RC_SEND_MIDDLE', 'RC', [], REQ | SEND | MIDDLE | PAY | RWQE],
  [Opcode.RcSendLast, 'RC_SEND_LAST', 'RC', [], REQ | SEND | LAST | PAY | RWQE | COMP],
  [Opcode.RcSendLastImm, 'RC_SEND_LAST_WITH_IMMEDIATE', 'RC', [Hdr.ImmDt], REQ | SEND | LAST | PAY | RWQE | COMP | IMM],
  [Opcode.RcSendOnly, 'RC_SEND_ONLY', 'RC', [], REQ | SEND | ONLY | PAY | RWQE | COMP],
  [Opcode.RcSendOnlyImm, 'RC_SEND_ONLY_WITH_IMMEDIATE', 'RC', [Hdr.ImmDt], REQ | SEND | ONLY | PAY | RWQE | COMP | IMM],
  [Opcode.RcWriteFirst, 'RC_RDMA_WRITE_FIRST', 'RC', [Hdr.Reth], REQ | WRITE | FIRST | PAY],
  [Opcode.RcWriteMiddle, 'RC_RDMA_WRITE_MIDDLE', 'RC', [], REQ | WRITE | MIDDLE | PAY],
  [Opcode.RcWriteLast, 'RC_RDMA_WRITE_LAST', 'RC', [], REQ | WRITE | LAST | PAY],
  [Opcode.RcWriteLastImm, 'RC_RDMA_WRITE_LAST_WITH_IMMEDIATE', 'RC', [Hdr.ImmDt], REQ | WRITE | LAST | PAY | RWQE | COMP | IMM],
  [Opcode.RcWriteOnly, 'RC_RDMA_WRITE_ONLY', 'RC', [Hdr.Reth], REQ | WRITE | ONLY | PAY],
  [Opcode.RcWriteOnlyImm, 'RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE', 'RC', [Hdr.Reth, Hdr.ImmDt], REQ | WRITE | ONLY | PAY | RWQE | COMP | IMM],
  [Opcode.RcReadRequest, 'RC_RDMA_READ_REQUEST', 'RC', [Hdr.Reth], REQ | READ | ONLY],
  [Opcode.RcReadResponseFirst, 'RC_RDMA_READ_RESPONSE_FIRST', 'RC', [Hdr.Aeth], RESP | READ | FIRST | PAY],
  [Opcode.RcReadResponseMiddle, 'RC_RDMA_READ_RESPONSE_MIDDLE', 'RC', [], RESP | READ | MIDDLE | PAY],
  [Opcode.RcReadResponseLast, 'RC_RDMA_READ_RESPONSE_LAST', 'RC', [Hdr.Aeth], RESP | READ | LAST | PAY],
  [Opcode.RcReadResponseOnly, 'RC_RDMA_READ_RESPONSE_ONLY', 'RC', [Hdr.Aeth], RESP | READ | ONLY | PAY],
  [Opcode.RcAck, 'RC_ACKNOWLEDGE', 'RC', [Hdr.Aeth], ACK | ONLY],
  [Opcode.RcAtomicAck, 'RC_ATOMIC_ACKNOWLEDGE', 'RC', [Hdr.Aeth, Hdr.AtomicAckEth], ACK | ATOMIC | ONLY],
  [Opcode.RcCompareSwap, 'RC_COMPARE_SWAP', 'RC', [Hdr.AtomicEth], REQ | ATOMIC | ONLY],
  [Opcode.RcFetchAdd, 'RC_FETCH_ADD', 'RC', [Hdr.AtomicEth], REQ | ATOMIC | ONLY],
  [Opcode.RcSendLastInv, 'RC_SEND_LAST_WITH_INVALIDATE', 'RC', [Hdr.Ieth], REQ | SEND | LAST | PAY | RWQE | COMP | INV],
  [Opcode.RcSendOnlyInv, 'RC_SEND_ONLY_WITH_INVALIDATE', 'RC', [Hdr.Ieth], REQ | SEND | ONLY | PAY | RWQE | COMP | INV],
  [Opcode.UdSendOnly, 'UD_SEND_ONLY', 'UD', [Hdr.Deth], REQ | SEND | ONLY | PAY | RWQE | COMP],
  [Opcode.UdSendOnlyImm, 'UD_SEND_ONLY_WITH_IMMEDIATE', 'UD', [Hdr.Deth, Hdr.ImmDt], REQ | SEND | ONLY | PAY | RWQE | COMP | IMM],
];

function infoOf([opcode, name, transport, hdrs, flags]: Row): OpcodeInfo {
  const offsets = new Array<number>(HDR_COUNT).fill(-1);
  let headers = 0;
  for (const h of hdrs) headers |= 1 << h;
  let off = BTH_BYTES;
  for (let h = 0; h < HDR_COUNT; h++) {
    if (headers & (1 << h)) {
      offsets[h] = off;
      off += HDR_BYTES[h];
    }
  }
  return Object.freeze({ opcode, name, transport, flags, headers, offsets: Object.freeze(offsets), headerBytes: off });
}

const TABLE: (OpcodeInfo | undefined)[] = new Array(256).fill(undefined);
for (const row of ROWS) TABLE[row[0]] = infoOf(row);

/** Every opcode vrdma speaks, in number order. */
export const OPCODES: readonly OpcodeInfo[] = Object.freeze(ROWS.map((r) => TABLE[r[0]] as OpcodeInfo));

/** The table entry of an opcode byte, or undefined for one vrdma does not speak. */
export function opcodeInfo(opcode: number): OpcodeInfo | undefined {
  return TABLE[opcode & 0xff];
}

/** Name of an opcode byte for logs, known or not. */
export function opcodeName(opcode: number): string {
  return TABLE[opcode & 0xff]?.name ?? `OPCODE_0x${(opcode & 0xff).toString(16).padStart(2, '0')}`;
}

export function hasHdr(info: OpcodeInfo, h: Hdr): boolean {
  return (info.headers & (1 << h)) !== 0;
}
