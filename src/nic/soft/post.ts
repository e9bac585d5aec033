// Posting work requests: what ibv_post_send / ibv_post_recv check before a WQE is queued. A
// malformed request (unknown opcode, too many SGEs, missing fields, queue full, QP in RESET) is
// refused at once with a VerbsError, as the verbs call returns an errno; keys, PDs, bounds and
// rights are checked when the transport reaches the WQE, and a failure there completes it with
// the IBTA status (LOC_PROT_ERR and friends) and takes the QP to ERR.
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import { QpState, QpType } from '../qp-state.js';
import { type RecvWqe, type SendWqe, type UdDestination, WqeState } from '../roce/wqe.js';
import type { MemoryPort } from '../roce/transport-qp.js';
import { SendFlags, WcStatus, WrOpcode } from '../types.js';
import type { RecvWr, SendWr, Sge } from '../verbs.js';

const U64_END = 1n << 64n;

function checkSges(sges: unknown, max: number): Sge[] {
  if (!Array.isArray(sges)) throw invalid('sgList must be an array');
  if (sges.length > max) throw invalid(`${sges.length} SGEs exceed the queue's ${max}`);
  return sges.map((s: Sge, i) => {
    if (!(Number.isSafeInteger(s?.addr) && s.addr >= 0)) throw invalid(`SGE ${i} address ${String(s?.addr)} is not an iova`);
    if (!(Number.isInteger(s.length) && s.length >= 0 && s.length <= 0xffffffff)) throw invalid(`SGE ${i} length ${String(s.length)} is not a u32`);
    if (!(Number.isInteger(s.lkey) && s.lkey >= 0 && s.lkey <= 0xffffffff)) throw invalid(`SGE ${i} lkey ${String(s.lkey)} is not a u32`);
    return { addr: s.addr, length: s.length, lkey: s.lkey };
  });
}

function u32(name: string, v: unknown): number {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) throw invalid(`${name} ${String(v)} is not a u32`);
  return v;
}

function u64(name: string, v: unknown): bigint {
  if (!(typeof v === 'bigint' && v >= 0n && v < U64_END)) throw invalid(`${name} must be a bigint in [0, 2^64)`);
  return v;
}

export interface SendContext {
  readonly type: QpType;
  readonly state: QpState;
  readonly pd: number;
  readonly maxSge: number;
  readonly maxInlineBytes: number;
  readonly sigAll: boolean;
  readonly memory: MemoryPort;
  /** Resolve a UD address handle (it must be in the QP's PD). */
  readonly ah: (handle: number) => string;
}

const RC_OPS = new Set([WrOpcode.Send, WrOpcode.SendWithImm, WrOpcode.RdmaWrite, WrOpcode.RdmaWriteWithImm, WrOpcode.RdmaRead, WrOpcode.AtomicCmpAndSwp, WrOpcode.AtomicFetchAndAdd]);
const UD_OPS = new Set([WrOpcode.Send, WrOpcode.SendWithImm]);

/** Turn a send work request into a WQE, or refuse it. */
export function sendWqeOf(wr: SendWr, c: SendContext): SendWqe {
  if (c.state === QpState.Reset) throw invalid('a QP in RESET takes no work requests');
  if (typeof wr.wrId !== 'bigint') throw invalid('wrId must be a bigint');
  const ops = c.type === QpType.Ud ? UD_OPS : RC_OPS;
  if (!ops.has(wr.opcode)) {
    throw new VerbsError(VerbsErrorCode.NotSupported, `opcode ${String(wr.opcode)} (${WrOpcode[wr.opcode] ?? 'unknown'}) is not supported on ${QpType[c.type]} QPs`);
  }
  const flags = u32('send flags', wr.flags);
  const sgList = checkSges(wr.sgList, c.maxSge);
  let inline: Uint8Array | null = null;
  let lengthBytes = sgList.reduce((n, s) => n + s.length, 0);
  if ((flags & SendFlags.INLINE) !== 0) {
    if (wr.opcode === WrOpcode.RdmaRead || wr.opcode === WrOpcode.AtomicCmpAndSwp || wr.opcode === WrOpcode.AtomicFetchAndAdd) {
      throw invalid('READ and atomics cannot be inline');
    }
    if (wr.inline !== undefined) {
      if (!(wr.inline instanceof Uint8Array)) throw invalid('inline must be a Uint8Array');
      inline = wr.inline.slice();
    } else {
      // Inline without bytes: the SGEs are read now, so the buffers may be reused at once.
      inline = new Uint8Array(lengthBytes);
      if (c.memory.checkSges(c.pd, sgList, 0) !== WcStatus.Success || !c.memory.gather(c.pd, sgList, 0, inline, 0, lengthBytes)) {
        throw invalid('inline SGEs are not readable through their keys');
      }
    }
    lengthBytes = inline.length;
    if (lengthBytes > c.maxInlineBytes) throw invalid(`${lengthBytes} inline bytes exceed the QP's ${c.maxInlineBytes}`);
  }
  const rdma = wr.opcode !== WrOpcode.Send && wr.opcode !== WrOpcode.SendWithImm;
  const atomic = wr.opcode === WrOpcode.AtomicCmpAndSwp || wr.opcode === WrOpcode.AtomicFetchAndAdd;
  const withImm = wr.opcode === WrOpcode.SendWithImm || wr.opcode === WrOpcode.RdmaWriteWithImm;
  let ud: UdDestination | null = null;
  if (c.type === QpType.Ud) {
    const dstIp = c.ah(u32('ah', wr.ah));
    ud = { dstIp, remoteQpn: u32('remote QPN', wr.remoteQpn) & 0xffffff, remoteQkey: u32('remote Q_Key', wr.remoteQkey) };
    if (wr.remoteQpn! > 0xffffff) throw invalid(`remote QPN ${wr.remoteQpn} is not 24-bit`);
  }
  if (rdma) {
    if (!(Number.isSafeInteger(wr.remoteAddr) && (wr.remoteAddr as number) >= 0)) throw invalid(`remote address ${String(wr.remoteAddr)} is not an iova`);
    u32('rkey', wr.rkey);
  }
  return {
    wrId: wr.wrId, opcode: wr.opcode, flags, sgList, inline, lengthBytes,
    immData: withImm ? u32('immediate data', wr.immData) : 0,
    remoteAddr: rdma ? BigInt(wr.remoteAddr as number) : 0n,
    rkey: rdma ? (wr.rkey as number) : 0,
    compareAdd: atomic ? u64('compareAdd', wr.compareAdd) : 0n,
    swap: wr.opcode === WrOpcode.AtomicCmpAndSwp ? u64('swap', wr.swap) : 0n,
    ud,
    signaled: c.sigAll || (flags & SendFlags.SIGNALED) !== 0,
    state: WqeState.Posted, status: WcStatus.Success, firstPsn: 0, psnCount: 0, nextPacket: 0, checked: false,
  };
}

/** Turn a receive work request into a WQE, or refuse it. */
export function recvWqeOf(wr: RecvWr, maxSge: number): RecvWqe {
  if (typeof wr.wrId !== 'bigint') throw invalid('wrId must be a bigint');
  const sgList = checkSges(wr.sgList, maxSge);
  return { wrId: wr.wrId, sgList, lengthBytes: sgList.reduce((n, s) => n + s.length, 0) };
}
