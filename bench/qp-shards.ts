// `npm run bench -- qp-shards` (also part of `scaling`): what spreading one VM's QPs over threads
// buys (src/nic/shard). Two VM pairs in one process: in one pair each VM runs its QPs on its own
// thread (qpShards 1), in the other each VM has 2 QP shards (its device thread plus a worker, the
// kernel steering each QP's packets to its shard). Each pair runs RDMA WRITEs over 8 RC QPs,
// WINDOW in flight per QP, for PAIRED_MS at a time; the two pairs take turns for PAIRED_ROUNDS
// rounds in alternating order (this machine drifts by half within a minute), and each pair's rate
// is its messages over its seconds across all rounds ('shards-2/shards-1').
// Then what a control call into a worker shard costs against the same call on the device's own
// shard (queryQp: the synchronous call channel's round trip), and what moving a connected QP
// between the device's thread and a worker costs (moveQp: suspend, flush its completions, save,
// load, re-steer, resume).
import { setImmediate as turn } from 'node:timers/promises';
import { CqeStatus, SendFlag, SendOpcode } from '../src/device/abi.js';
import { IOVA, type PairGuest, connectPair, vmGuest } from '../src/demo/durable-pair.js';
import { Vm } from '../src/host/vm.js';
import { QpType } from '../src/nic/qp-state.js';
import { ShardedVerbs } from '../src/nic/shard/sharded-verbs.js';
import { type BenchRow, runTasks } from './harness.js';

const SUITE = 'qp-shards';
const QPS = 8;
const WINDOW = 16;
const SIZES = [64, 4096];
const PAIRED_ROUNDS = 7;
const PAIRED_MS = 800;
const WARMUP_MS = 300;
/** Each QP writes within its own 64 KiB of the data area. */
const QP_SPAN = 64 * 1024;

interface Pair {
  vms: Vm[];
  a: PairGuest;
  b: PairGuest;
}

interface Round {
  messages: number;
  seconds: number;
}

export async function openPair(ipA: string, ipB: string, qpShards: number): Promise<Pair> {
  const vms: Vm[] = [];
  try {
    vms.push(await Vm.open({ ip: ipA, qpShards }));
    vms.push(await Vm.open({ ip: ipB, qpShards }));
    const a = await vmGuest(vms[0], QPS);
    const b = await vmGuest(vms[1], QPS);
    await connectPair(a, b);
    return { vms, a, b };
  } catch (err) {
    for (const vm of vms) await vm.close();
    throw err;
  }
}

/** WRITEs of `size` bytes from a to b on every QP for `ms`, then until all in flight completed. */
export async function runFor(p: Pair, size: number, ms: number): Promise<Round> {
  const { a, b } = p;
  const index = new Map(a.qps.map((qp, i) => [qp.qpn, i]));
  const inFlight = new Array<number>(a.qps.length).fill(0);
  let messages = 0;
  let next = 0n;
  const started = performance.now();
  for (;;) {
    const posting = performance.now() - started < ms;
    if (posting) {
      for (const [q, qp] of a.qps.entries()) {
        const wrs = [];
        for (; inFlight[q] < WINDOW; inFlight[q]++) {
          const at = q * QP_SPAN + (Number(next % 8n) * size);
          wrs.push({ wrId: next++, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + at, rkey: b.rkey, sgList: [{ addr: IOVA + at, length: size, lkey: a.lkey }] });
        }
        if (wrs.length > 0) qp.postSend(wrs);
      }
    }
    for (const c of a.cq.poll()) {
      if (c.status !== CqeStatus.Success) throw new Error(`QP ${c.qpNum}: a WRITE completed with status ${c.status}`);
      inFlight[index.get(c.qpNum)!]--;
      messages++;
    }
    if (!posting && inFlight.every((n) => n === 0)) break;
    await turn();
  }
  return { messages, seconds: (performance.now() - started) / 1000 };
}

const rateOf = (r: Round): number => r.messages / r.seconds;
const round2 = (x: number): number => Math.round(x * 100) / 100;

async function pairedRows(one: Pair, two: Pair): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const size of SIZES) {
    await runFor(one, size, WARMUP_MS);
    await runFor(two, size, WARMUP_MS);
    const t1 = { messages: 0, seconds: 0 };
    const t2 = { messages: 0, seconds: 0 };
    const ratios: number[] = [];
    for (let r = 0; r < PAIRED_ROUNDS; r++) {
      const order = r % 2 === 0 ? [one, two] : [two, one];
      const got = new Map<Pair, Round>();
      for (const p of order) got.set(p, await runFor(p, size, PAIRED_MS));
      const r1 = got.get(one)!;
      const r2 = got.get(two)!;
      t1.messages += r1.messages;
      t1.seconds += r1.seconds;
      t2.messages += r2.messages;
      t2.seconds += r2.seconds;
      ratios.push(rateOf(r2) / rateOf(r1));
    }
    const rate1 = rateOf(t1);
    const rate2 = rateOf(t2);
    rows.push({
      suite: SUITE, name: `rdma write ${size} B, one VM pair, ${QPS} QPs, 2 QP shards over 1 in paired rounds`, engine: 'shards-2/shards-1', unit: 'message',
      opsPerSec: rate2, shards1PerSec: Math.round(rate1), ratio: round2(rate2 / rate1), ratioMin: round2(Math.min(...ratios)), ratioMax: round2(Math.max(...ratios)),
      rounds: PAIRED_ROUNDS, goodputMbps2: Math.round((rate2 * size * 8) / 1e6),
    });
  }
  return rows;
}

/** queryQp on a QP of shard 0 (a direct call) and of shard 1 (through the call channel). */
async function callRows(vm: Vm): Promise<BenchRow[]> {
  const s = vm.verbs;
  if (!(s instanceof ShardedVerbs)) throw new Error('not a sharded VM');
  const pd = s.allocPd();
  const cq = s.createCq(16);
  const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
  const make = (qpn: number) => s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn });
  const here = make(0x7000);
  const there = make(0x7001);
  try {
    const rows = await runTasks(SUITE, [
      { name: 'queryQp on a QP shard', engine: 'device thread', unit: 'call', opsPerCall: 1, fn: () => void s.queryQp(here) },
      { name: 'queryQp on a QP shard', engine: 'worker (call channel)', unit: 'call', opsPerCall: 1, fn: () => void s.queryQp(there) },
    ]);
    return rows.map((r) => ({ ...r, usPerCall: round2(1e6 / r.opsPerSec) }));
  } finally {
    s.destroyQp(here);
    s.destroyQp(there);
    s.destroyCq(cq);
    s.deallocPd(pd);
  }
}

/** A connected, idle QP moved between shard 0 and shard 1 and back, MOVES times. */
async function moveRows(p: Pair): Promise<BenchRow[]> {
  const s = p.vms[0].verbs as ShardedVerbs;
  const qpn = p.a.qps[0].qpn;
  const MOVES = 40;
  const started = performance.now();
  for (let i = 0; i < MOVES; i++) {
    s.moveQp(qpn, ((s.ownerOf(qpn) as number) + 1) % 2);
    await turn();
  }
  const seconds = (performance.now() - started) / 1000;
  return [{ suite: SUITE, name: 'moveQp of a connected idle QP, device thread <-> worker', engine: 'shards-2', unit: 'move', opsPerSec: MOVES / seconds, msPerMove: round2((seconds * 1000) / MOVES) }];
}

export async function qpShardRows(): Promise<BenchRow[]> {
  const one = await openPair('127.0.47.1', '127.0.47.2', 1);
  let two: Pair | null = null;
  try {
    two = await openPair('127.0.47.3', '127.0.47.4', 2);
    return [...(await pairedRows(one, two)), ...(await callRows(two.vms[0])), ...(await moveRows(two))];
  } finally {
    for (const vm of [...one.vms, ...(two?.vms ?? [])]) await vm.close();
  }
}

export default qpShardRows;
