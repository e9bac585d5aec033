// Checked RC traffic between two guests (durable-pair.ts), driven from this thread: on
// every QP pair a stream of RDMA WRITEs and SENDs, each to its own place, at most `window` in
// flight per QP. Every completion is checked as it is polled: success, the right opcode, and on
// each QP the next work request in posting order — so a completion lost, repeated or out of
// order fails at once (TrafficError). At the end every byte written or sent is compared, at the
// receiver, with what was posted.
import { CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../device/abi.js';
import type { Cqe } from '../device/cqe.js';
import { gpa } from '../memory/gpa.js';
import { Stream, fillPayload, findPayloadMismatch, payloadKey } from '../workload/pattern.js';
import { DATA, DATA_BYTES, IOVA, type PairGuest } from './durable-pair.js';

export class TrafficError extends Error {
  override readonly name = 'TrafficError';
}

export interface TrafficOptions {
  /** Operations per QP: they alternate WRITE and SEND. */
  ops: number;
  /** Bytes per operation. */
  bytes: number;
  window: number;
  /** Called between polls with the fraction of all send completions seen so far. */
  onProgress?: (done: number) => Promise<void> | void;
  timeoutMs?: number;
}

export interface TrafficReport {
  sendCompletions: number;
  recvCompletions: number;
  /** Bytes compared at the receiver. */
  bytesVerified: number;
  seconds: number;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Where op `k` of QP `q` lives, in the sender's and the receiver's data area alike. */
function placeOf(q: number, k: number, o: TrafficOptions, qps: number): number {
  const slot = Math.ceil(o.bytes / 4096) * 4096;
  const at = (k * qps + q) * slot;
  if (at + slot > DATA_BYTES) throw new RangeError(`${qps} QPs × ${o.ops} operations of ${o.bytes} bytes do not fit the ${DATA_BYTES}-byte data area`);
  return at;
}

const keyOf = (q: number, k: number) => payloadKey(0x5eed, 0, q, k % 2 === 0 ? Stream.Write : Stream.Send, k);

export async function runCheckedTraffic(a: PairGuest, b: PairGuest, o: TrafficOptions): Promise<TrafficReport> {
  const started = performance.now();
  const qps = a.qps.length;
  placeOf(qps - 1, o.ops - 1, o, qps);
  const qpIndexA = new Map(a.qps.map((qp, i) => [qp.qpn, i]));
  const qpIndexB = new Map(b.qps.map((qp, i) => [qp.qpn, i]));
  // Every SEND lands in a receive posted up front, at the op's own place.
  for (const [q, qp] of b.qps.entries()) {
    const recvs = [];
    for (let k = 1; k < o.ops; k += 2) recvs.push({ wrId: BigInt(k), sgList: [{ addr: IOVA + placeOf(q, k, o, qps), length: o.bytes, lkey: b.lkey }] });
    for (let i = 0; i < recvs.length; i += 64) qp.postRecv(recvs.slice(i, i + 64));
  }
  const posted = new Array<number>(qps).fill(0);
  const completed = new Array<number>(qps).fill(0);
  const received = new Array<number>(qps).fill(0);
  const total = qps * o.ops;
  const recvTotal = qps * (o.ops >> 1);
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  const payload = new Uint8Array(o.bytes);
  let done = 0;
  let recvDone = 0;
  const check = (c: Cqe, what: string, expected: bigint, opcode: CqeOpcode, byteLen?: number) => {
    if (c.status !== CqeStatus.Success) throw new TrafficError(`${what}: status ${CqeStatus[c.status] ?? c.status}`);
    if (c.wrId !== expected) throw new TrafficError(`${what}: work request ${c.wrId} completed where ${expected} was due (lost, repeated or out of order)`);
    if (c.opcode !== opcode) throw new TrafficError(`${what}: opcode ${c.opcode}, expected ${opcode}`);
    if (byteLen !== undefined && c.byteLen !== byteLen) throw new TrafficError(`${what}: ${c.byteLen} bytes, expected ${byteLen}`);
  };
  while (done < total || recvDone < recvTotal) {
    for (let q = 0; q < qps; q++) {
      const wrs = [];
      while (posted[q] < o.ops && posted[q] - completed[q] < o.window) {
        const k = posted[q]++;
        const at = placeOf(q, k, o, qps);
        fillPayload(payload, keyOf(q, k));
        a.device.dm.guest.write(gpa(DATA + at), payload);
        const sg = [{ addr: IOVA + at, length: o.bytes, lkey: a.lkey }];
        wrs.push(k % 2 === 0
          ? { wrId: BigInt(k), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + at, rkey: b.rkey, sgList: sg }
          : { wrId: BigInt(k), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sg });
      }
      if (wrs.length > 0) a.qps[q].postSend(wrs);
    }
    for (const c of a.cq.poll()) {
      const q = qpIndexA.get(c.qpNum);
      if (q === undefined) throw new TrafficError(`a completion for QP ${c.qpNum}, which the sender does not have`);
      const k = completed[q]++;
      check(c, `QP ${q} send ${k}`, BigInt(k), k % 2 === 0 ? CqeOpcode.RdmaWrite : CqeOpcode.Send);
      done++;
    }
    for (const c of b.cq.poll()) {
      const q = qpIndexB.get(c.qpNum);
      if (q === undefined) throw new TrafficError(`a receive completion for QP ${c.qpNum}, which the receiver does not have`);
      const k = 2 * received[q]++ + 1;
      check(c, `QP ${q} receive ${k}`, BigInt(k), CqeOpcode.Recv, o.bytes);
      recvDone++;
    }
    if (Date.now() > deadline) throw new TrafficError(`traffic stalled: ${done} of ${total} sends and ${recvDone} of ${recvTotal} receives completed`);
    await o.onProgress?.(done / total);
    await yieldToLoop();
  }
  if (a.cq.poll().length > 0 || b.cq.poll().length > 0) throw new TrafficError('a completion beyond the work posted');
  const scratch = new Uint8Array(o.bytes);
  for (let q = 0; q < qps; q++) {
    for (let k = 0; k < o.ops; k++) {
      const got = b.device.dm.guest.slice(gpa(DATA + placeOf(q, k, o, qps)), o.bytes);
      const at = findPayloadMismatch(got, keyOf(q, k), scratch);
      if (at >= 0) throw new TrafficError(`QP ${q} operation ${k}: byte ${at} at the receiver differs from what was sent`);
    }
  }
  return { sendCompletions: done, recvCompletions: recvDone, bytesVerified: total * o.bytes, seconds: (performance.now() - started) / 1000 };
}
