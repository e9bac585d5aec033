// The work requests of one QP in a worker shard that have not completed yet, as the facade saw
// them posted and complete (sharded-verbs.ts). If the shard's thread dies, its QPs' state dies
// with it; the ledger is what lets every one of those work requests still complete, with
// WR_FLUSH_ERR, as the QP going to ERR would complete them (IBTA 10.7.2.1): none is lost.
import { Fifo } from '../../util/fifo.js';
import { WcOpcode, WcStatus } from '../types.js';
import type { WorkCompletion } from '../verbs.js';

const isReceive = (opcode: WcOpcode): boolean => opcode === WcOpcode.Recv || opcode === WcOpcode.RecvRdmaWithImm;

export function flushedWc(qpn: number, wrId: bigint, opcode: WcOpcode): WorkCompletion {
  return { wrId, status: WcStatus.WrFlushErr, opcode, vendorErr: 0, byteLen: 0, immData: 0, qpNum: qpn, srcQp: 0, wcFlags: 0, pkeyIndex: 0, slid: 0, sl: 0, dlidPathBits: 0 };
}

export class QpLedger {
  private readonly sends = new Fifo<{ wrId: bigint; opcode: WcOpcode }>();
  private readonly recvs = new Fifo<bigint>();
  /** Completions since takeWork last looked: the QP's recent work, for balancing. */
  private work = 0;

  /**
   * `maxSendWr` and `maxRecvWr` are the QP's queue depths: the provider holds no more than that
   * many uncompleted, so a longer ledger's oldest entries have completed (unsignaled sends
   * complete without a completion until a signaled one follows).
   */
  constructor(readonly qpn: number, private readonly maxSendWr: number, private readonly maxRecvWr: number) {}

  get outstanding(): number {
    return this.sends.length + this.recvs.length;
  }

  postedSend(wrId: bigint, opcode: WcOpcode): void {
    this.sends.push({ wrId, opcode });
    if (this.sends.length > this.maxSendWr) this.sends.shift();
  }

  postedRecv(wrId: bigint): void {
    this.recvs.push(wrId);
    if (this.recvs.length > this.maxRecvWr) this.recvs.shift();
  }

  /**
   * A completion of this QP arrived. Receives complete in posting order. A send completion also
   * retires the unsignaled sends posted before it, which complete without one.
   */
  completed(wc: WorkCompletion): void {
    this.work++;
    if (isReceive(wc.opcode)) {
      if (this.recvs.length > 0 && this.recvs.at(0) === wc.wrId) this.recvs.shift();
      return;
    }
    for (let i = 0; i < this.sends.length; i++) {
      if (this.sends.at(i)!.wrId !== wc.wrId) continue;
      for (let j = 0; j <= i; j++) this.sends.shift();
      return;
    }
  }

  /** Completions since the last call. */
  takeWork(): number {
    const w = this.work;
    this.work = 0;
    return w;
  }

  /** Every work request still outstanding, completed with WR_FLUSH_ERR (sends, then receives), and forgotten. */
  flush(): { sends: WorkCompletion[]; recvs: WorkCompletion[] } {
    const sends: WorkCompletion[] = [];
    const recvs: WorkCompletion[] = [];
    for (let w = this.sends.shift(); w !== undefined; w = this.sends.shift()) sends.push(flushedWc(this.qpn, w.wrId, w.opcode));
    for (let id = this.recvs.shift(); id !== undefined; id = this.recvs.shift()) recvs.push(flushedWc(this.qpn, id, WcOpcode.Recv));
    return { sends, recvs };
  }
}
