// Checked RC traffic between two durable guests (durable-pair.ts), driven from this thread: on
// every QP pair, a stream of RDMA WRITEs and SENDs, each to its own place, at most `window` in
// flight per QP. Every completion is checked as it is polled: success, and on each QP the next
// work request in posting order — so a completion lost, repeated or out of order fails at once.
// At the end every byte written or sent is compared with what was posted.
import assert from 'node:assert/strict';
import { CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import { gpa } from '../../src/memory/gpa.js';
import { pattern } from '../e2e/pattern.js';
import { DATA, DATA_BYTES, IOVA, type DurableGuest } from './durable-pair.js';

export interface TrafficOptions {
  /** Operations per QP: they alternate WRITE and SEND. */
  ops: number;
  /** Bytes per operation. */
  bytes: number;
  window: number;
  /** Called between polls with the fraction of all completions seen so far. */
  onProgress?: (done: number) => Promise<void> | void;
  timeoutMs?: number;
}

export interface TrafficReport {
  sendCompletions: number;
  recvCompletions: number;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Where op `k` of QP `q` lives, in the sender's and the receiver's data area alike. */
function placeOf(q: number, k: number, o: TrafficOptions, qps: number): number {
  const slot = Math.ceil(o.bytes / 4096) * 4096;
  const at = (k * qps + q) * slot;
  if (at + slot > DATA_BYTES) throw new RangeError('the traffic does not fit the data area');
  return at;
}

export async function runCheckedTraffic(a: DurableGuest, b: DurableGuest, o: TrafficOptions): Promise<TrafficReport> {
  const qps = a.qps.length;
  const qpIndexA = new Map(a.qps.map((qp, i) => [qp.qpn, i]));
  const qpIndexB = new Map(b.qps.map((qp, i) => [qp.qpn, i]));
  const sends = Math.ceil(o.ops / 2);
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
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  let done = 0;
  let recvDone = 0;
  const check = (c: Cqe, what: string, expected: bigint, opcode: CqeOpcode) => {
    assert.equal(c.status, CqeStatus.Success, `${what}: status ${c.status}`);
    assert.equal(c.wrId, expected, `${what}: completions out of order, repeated or lost`);
    assert.equal(c.opcode, opcode, `${what}: opcode`);
  };
  while (done < total || recvDone < qps * (o.ops >> 1)) {
    for (let q = 0; q < qps; q++) {
      const wrs = [];
      while (posted[q] < o.ops && posted[q] - completed[q] < o.window) {
        const k = posted[q]++;
        const at = placeOf(q, k, o, qps);
        a.device.dm.guest.write(gpa(DATA + at), pattern(q * 100_000 + k, o.bytes));
        const sg = [{ addr: IOVA + at, length: o.bytes, lkey: a.lkey }];
        wrs.push(k % 2 === 0
          ? { wrId: BigInt(k), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + at, rkey: b.rkey, sgList: sg }
          : { wrId: BigInt(k), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sg });
      }
      if (wrs.length > 0) a.qps[q].postSend(wrs);
    }
    for (const c of a.cq.poll()) {
      const q = qpIndexA.get(c.qpNum);
      assert.ok(q !== undefined, `a completion for QP ${c.qpNum}`);
      const k = completed[q]++;
      check(c, `QP ${q} send ${k}`, BigInt(k), k % 2 === 0 ? CqeOpcode.RdmaWrite : CqeOpcode.Send);
      done++;
    }
    for (const c of b.cq.poll()) {
      const q = qpIndexB.get(c.qpNum);
      assert.ok(q !== undefined, `a receive completion for QP ${c.qpNum}`);
      const k = 2 * received[q]++ + 1;
      check(c, `QP ${q} receive ${k}`, BigInt(k), CqeOpcode.Recv);
      assert.equal(c.byteLen, o.bytes);
      recvDone++;
    }
    if (Date.now() > deadline) assert.fail(`traffic stalled: ${done} of ${total} sends and ${recvDone} receives completed`);
    await o.onProgress?.(done / total);
    await yieldToLoop();
  }
  assert.ok(a.cq.poll().length === 0 && b.cq.poll().length === 0, 'no completion beyond the work posted');
  for (let q = 0; q < qps; q++) {
    for (let k = 0; k < o.ops; k++) {
      const at = placeOf(q, k, o, qps);
      const got = b.device.dm.guest.slice(gpa(DATA + at), o.bytes);
      assert.deepEqual(got, pattern(q * 100_000 + k, o.bytes), `QP ${q} op ${k}: the bytes at the receiver`);
    }
  }
  return { sendCompletions: done, recvCompletions: recvDone + 0 * sends };
}
