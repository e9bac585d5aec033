// RDMA WRITEs through the death of a QP shard's thread (src/nic/shard): what `vrdma qp-shards
// --kill` and the QP shard tests drive. Every QP of a keeps a window of WRITEs to b in flight;
// once a third of them completed, `kill` ends a worker shard. Every completion is checked as it
// is polled: the next work request of its QP in posting order, so one lost or repeated fails at
// once (TrafficError). A QP whose completion fails is posted to no more; the run ends when every
// work request posted has completed. WRITEs that completed well are compared at b.
import { AttrMask, CqeStatus, SendFlag, SendOpcode } from '../device/abi.js';
import { gpa } from '../memory/gpa.js';
import { QpState } from '../nic/qp-state.js';
import { Stream, fillPayload, findPayloadMismatch, payloadKey } from '../workload/pattern.js';
import { TrafficError } from './checked-traffic.js';
import { DATA, DATA_BYTES, IOVA, type PairGuest, connectQps } from './durable-pair.js';

const WRITE_BYTES = 4096;
const WINDOW = 8;

export interface ShardKillRun {
  /** Each QP's completion statuses, in posting order. */
  statuses: CqeStatus[][];
  /** Bytes of the WRITEs that completed well, compared at b. */
  bytesVerified: number;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function writesThroughKill(a: PairGuest, b: PairGuest, ops: number, kill: () => Promise<void>, timeoutMs = 60_000): Promise<ShardKillRun> {
  const qps = a.qps.length;
  const placeOf = (q: number, k: number): number => (k * qps + q) * WRITE_BYTES;
  const keyOf = (q: number, k: number): number => payloadKey(0x5ead, 0, q, Stream.Write, k);
  if (placeOf(qps - 1, ops - 1) + WRITE_BYTES > DATA_BYTES) throw new RangeError(`${qps} QPs × ${ops} WRITEs do not fit the data area`);
  const index = new Map(a.qps.map((qp, i) => [qp.qpn, i]));
  const posted = new Array<number>(qps).fill(0);
  const statuses: CqeStatus[][] = a.qps.map(() => []);
  const failed = new Array<boolean>(qps).fill(false);
  const payload = new Uint8Array(WRITE_BYTES);
  let killed: Promise<void> | null = null;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (let q = 0; q < qps; q++) {
      const wrs = [];
      while (!failed[q] && posted[q] < ops && posted[q] - statuses[q].length < WINDOW) {
        const k = posted[q]++;
        fillPayload(payload, keyOf(q, k));
        a.device.dm.guest.write(gpa(DATA + placeOf(q, k)), payload);
        const at = IOVA + placeOf(q, k);
        wrs.push({ wrId: BigInt(k), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: at, rkey: b.rkey, sgList: [{ addr: at, length: WRITE_BYTES, lkey: a.lkey }] });
      }
      if (wrs.length > 0) a.qps[q].postSend(wrs);
    }
    for (const c of a.cq.poll()) {
      const q = index.get(c.qpNum);
      if (q === undefined) throw new TrafficError(`a completion for QP ${c.qpNum}, which the sender does not have`);
      if (c.wrId !== BigInt(statuses[q].length)) throw new TrafficError(`QP ${q}: completion of WRITE ${c.wrId} where ${statuses[q].length} was next`);
      statuses[q].push(c.status);
      if (c.status !== CqeStatus.Success) failed[q] = true;
    }
    const done = statuses.reduce((n, st) => n + st.length, 0);
    if (killed === null && done >= (qps * ops) / 3) killed = kill();
    if (killed !== null && posted.every((p, q) => statuses[q].length === p && (p === ops || failed[q]))) break;
    if (Date.now() > deadline) throw new TrafficError(`stalled: ${statuses.map((st) => st.length).join(', ')} of ${posted.join(', ')} WRITEs completed`);
    await yieldToLoop();
  }
  await killed;
  if (a.cq.poll().length > 0) throw new TrafficError('a completion beyond the work posted');
  const scratch = new Uint8Array(WRITE_BYTES);
  let bytesVerified = 0;
  for (const [q, st] of statuses.entries()) {
    for (let k = 0; k < st.length && st[k] === CqeStatus.Success; k++) {
      const at = findPayloadMismatch(b.device.dm.guest.slice(gpa(DATA + placeOf(q, k)), WRITE_BYTES), keyOf(q, k), scratch);
      if (at >= 0) throw new TrafficError(`QP ${q} WRITE ${k}: byte ${at} at the receiver differs from what was sent`);
      bytesVerified += WRITE_BYTES;
    }
  }
  return { statuses, bytesVerified };
}

/** Reset the pairs `which` names on both sides and connect them again (new PSNs). */
export async function reconnectPairs(a: PairGuest, b: PairGuest, which: readonly boolean[]): Promise<void> {
  for (let i = 0; i < a.qps.length; i++) {
    if (!which[i]) continue;
    await a.qps[i].modify(AttrMask.STATE, { qpState: QpState.Reset });
    await b.qps[i].modify(AttrMask.STATE, { qpState: QpState.Reset });
    await connectQps(a, b, i, 0x3000 + i, 0x7000 + i);
  }
}
