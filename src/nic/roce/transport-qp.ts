// What the three transport roles (requester.ts, responder.ts, completer.ts) share about one QP:
// its connection attributes, the send queue, each role's own state, and the ports through which
// they reach guest memory, the wire and the verbs layer above. The verbs provider owns the QP
// object and implements the ports; the roles know nothing of PDs, CQs or keys beyond numbers.
import { Fifo } from '../../util/fifo.js';
import type { QpState, QpType } from '../qp-state.js';
import type { Sge } from '../verbs.js';
import type { WcOpcode, WcStatus } from '../types.js';
import type { BuildFields, RocePacket } from './packet.js';
import type { NakCode } from './headers.js';
import type { RecvWqe, SendWqe } from './wqe.js';

/** An MR a peer may touch, as the memory port resolved it from an R_Key. Opaque to the roles. */
export type RemoteRegion = object;

/** Guest memory through the QP's protection domain (the verbs layer enforces keys and rights). */
export interface MemoryPort {
  /** Check every SGE's L_Key, PD, bounds and `access` (types.ts Access); Success or the WC status. */
  checkSges(pd: number, sges: readonly Sge[], access: number): WcStatus;
  /** Copy `len` bytes from the SGE list at message offset `offset` to dst[dstOff]; false on any failure. */
  gather(pd: number, sges: readonly Sge[], offset: number, dst: Uint8Array, dstOff: number, len: number): boolean;
  /** Copy `len` bytes of src[srcOff] into the SGE list at `offset` (LOCAL_WRITE); false on any failure. */
  scatter(pd: number, sges: readonly Sge[], offset: number, src: Uint8Array, srcOff: number, len: number): boolean;
  /** Resolve an R_Key for [va, va+len) with `access`, or say which NAK it earns (9.7.5.2.8). */
  remote(pd: number, rkey: number, va: bigint, len: number, access: number): RemoteRegion | NakCode;
  remoteRead(region: RemoteRegion, va: bigint, dst: Uint8Array, dstOff: number, len: number): boolean;
  remoteWrite(region: RemoteRegion, va: bigint, src: Uint8Array, srcOff: number, len: number): boolean;
  /** An 8-byte atomic at an 8-aligned va; the original value, or null if the memory went away. */
  remoteAtomic(region: RemoteRegion, va: bigint, add: boolean, compareAdd: bigint, swap: bigint): bigint | null;
}

/** The wire: build a packet with its ICRC and send it. `fill` writes the payload; false aborts. */
export interface PacketPort {
  transmit(dstIp: string, fields: BuildFields, payloadBytes: number, fill: ((buf: Uint8Array, off: number) => boolean) | null): boolean;
}

/** A completion as the roles describe it; the verbs layer fills in the rest. */
export interface Completion {
  wrId: bigint;
  status: WcStatus;
  opcode: WcOpcode;
  byteLen: number;
  immData: number;
  wcFlags: number;
  srcQp: number;
  /** A receive of a message whose last packet had the solicited-event bit. */
  solicited?: boolean;
}

/** What the roles ask of the QP's owner. */
export interface QpHooks {
  completeSend(c: Completion): void;
  completeRecv(c: Completion): void;
  /** The receive WQE a message will land in (from the RQ or the SRQ), without taking it. */
  peekRecv(): RecvWqe | null;
  takeRecv(): RecvWqe | null;
  /** A fatal error: RC QPs go to ERR, UD ones to SQE; outstanding work is flushed. */
  enterError(): void;
  scheduleRequester(): void;
  /** Arm the local ACK timer from now (restarting it), or stop it. */
  restartRetryTimer(): void;
  stopRetryTimer(): void;
  /** Wait `us` before the requester may resend after an RNR NAK. */
  startRnrTimer(us: number): void;
  /** Send the coalesced ACK at the end of this turn of the event loop. */
  scheduleAck(): void;
  /**
   * An atomic request at `psn` is about to change memory (the one effect a responder cannot
   * redo): a durable backend commits an intent first (src/backend). If it throws, the atomic is
   * not executed.
   */
  beforeAtomic?(psn: number, op: AtomicOp): void;
}

export interface RequesterState {
  /** PSN of the next new packet. */
  psn: number;
  /** Index in the send queue of the WQE to work on next. */
  next: number;
  /** Go back to the oldest unacknowledged PSN before sending anything new (go-back-N). */
  needRetry: boolean;
  /** An RNR NAK was received; nothing is sent until its timer runs out. */
  waitRnr: boolean;
  /** Packets sent since the last one that asked for an ACK. */
  noAckPackets: number;
}

export interface CompleterState {
  /** The oldest PSN not yet acknowledged or answered. */
  psn: number;
  retryLeft: number;
  rnrLeft: number;
  /** A go-back-N was started by a NAK or implied NAK and has not made progress yet. */
  retryStarted: boolean;
}

/** A READ or atomic the responder executed, kept to answer its duplicates (9.7.5.1.2). */
/** An atomic request as the responder is about to execute it (QpHooks.beforeAtomic). */
export interface AtomicOp {
  readonly region: RemoteRegion;
  readonly va: bigint;
  readonly rkey: number;
  readonly opcode: number;
  /** Fetch-and-add (else compare-and-swap). */
  readonly add: boolean;
  /** The add operand, or the value to compare with. */
  readonly compareAdd: bigint;
  readonly swap: bigint;
}

export interface ResponderResource {
  readonly atomic: boolean;
  readonly psn: number;
  readonly psnCount: number;
  readonly rkey: number;
  readonly va: bigint;
  readonly lenBytes: number;
  /** Atomic: the value read before the operation. */
  readonly orig: bigint;
}

export interface ResponderState {
  /** Expected PSN. */
  psn: number;
  /** Message sequence number: messages completed (24-bit). */
  msn: number;
  /** A sequence-error or RNR NAK was sent; later out-of-sequence packets are dropped silently. */
  nakSent: boolean;
  /** Opcode of the last accepted packet, or -1: checks FIRST/MIDDLE/LAST order. */
  lastOpcode: number;
  /** The receive WQE a multi-packet SEND is landing in, and how far. */
  recv: RecvWqe | null;
  recvOffset: number;
  /** The RDMA WRITE in progress. */
  write: { region: RemoteRegion | null; va: bigint; remaining: number; lenBytes: number } | null;
  resources: Fifo<ResponderResource>;
  ackPending: boolean;
  ackPsn: number;
  /**
   * One request that arrived ahead of the expected PSN (a copy), executed when the gap before
   * it fills; `nakDue` sends the sequence NAK at the end of the turn if the gap is still open.
   */
  held: { pkt: RocePacket; fromIp: string } | null;
  nakDue: boolean;
}

/** Transport attributes the roles read (set by modify QP). */
export interface TransportAttrs {
  pmtuBytes: number;
  destQpn: number;
  /** The peer's IPv4 address (RC): where packets go and where they must come from. */
  dstIp: string;
  qkey: number;
  /** Local ACK timeout exponent, retry count, RNR retry count, min RNR timer code. */
  timeout: number;
  retryCnt: number;
  rnrRetry: number;
  minRnrTimer: number;
  maxRdAtomic: number;
  maxDestRdAtomic: number;
  /** Remote rights granted by the QP (types.ts Access bits). */
  accessFlags: number;
}

export class TransportQp {
  readonly sq = new Fifo<SendWqe>(64);
  req: RequesterState = { psn: 0, next: 0, needRetry: false, waitRnr: false, noAckPackets: 0 };
  comp: CompleterState = { psn: 0, retryLeft: 0, rnrLeft: 0, retryStarted: false };
  resp: ResponderState = TransportQp.freshResponder(0);
  state: QpState;
  // R6, meaningful while `state` is SUSPENDED (suspended.ts). Plain fields, saved with the QP.
  /** The state resumeQp returns to. */
  resumeState: QpState;
  /** Arriving requests are dropped (true) or answered with an RNR NAK (false). */
  suspendDrop = false;
  /** The highest PSN the peer acknowledged while suspended, applied at resume; -1 if none. */
  suspendAckPsn = -1;

  constructor(
    readonly qpn: number,
    readonly type: QpType,
    readonly pd: number,
    readonly attrs: TransportAttrs,
    readonly hooks: QpHooks,
    initial: QpState,
  ) {
    this.state = initial;
    this.resumeState = initial;
  }

  static freshResponder(psn: number): ResponderState {
    return {
      psn, msn: 0, nakSent: false, lastOpcode: -1, recv: null, recvOffset: 0, write: null,
      resources: new Fifo<ResponderResource>(4), ackPending: false, ackPsn: 0, held: null, nakDue: false,
    };
  }

  /** Start the send side at `psn` (RTR -> RTS). */
  startRequester(psn: number): void {
    this.req = { psn, next: 0, needRetry: false, waitRnr: false, noAckPackets: 0 };
    this.comp = { psn, retryLeft: this.attrs.retryCnt, rnrLeft: this.attrs.rnrRetry, retryStarted: false };
  }

  /** Start the receive side at `psn` (INIT -> RTR). */
  startResponder(psn: number): void {
    this.resp = TransportQp.freshResponder(psn);
  }
}
