// The QP shards demo (`vrdma qp-shards`): two VMs on this thread whose devices run their QPs in
// N threads each (src/nic/shard), with the kernel steering every packet by destination QPN to the
// thread that owns its QP. Checked RC traffic (WRITEs and SENDs, every completion checked in
// order per QP, every byte compared at the receiver) runs over real UDP on loopback; the report
// says how much each shard carried. While it runs, every QP of both VMs moves to the next shard
// `moves` times (ShardedVerbs.moveQp: any shard takes any QP, under its ownership word, the
// kernel's steering following it). With kill, a worker shard of the sender is then terminated
// under a stream of WRITEs: its QPs' work completes with WR_FLUSH_ERR, the other QPs finish, a
// successor takes the dead shard's socket, and the failed QP pairs, reset and connected again,
// run checked traffic once more with the rest.
import { CqeStatus } from '../device/abi.js';
import { Vm } from '../host/vm.js';
import { ShardedVerbs } from '../nic/shard/sharded-verbs.js';
import { runCheckedTraffic } from './checked-traffic.js';
import { connectPair, vmGuest } from './durable-pair.js';
import { reconnectPairs, writesThroughKill } from './shard-kill.js';

export interface QpShardsOptions {
  shards: number;
  qps: number;
  /** Operations per QP of the checked traffic (RDMA WRITE and SEND alternately). */
  ops: number;
  bytes: number;
  window: number;
  /** Terminate a worker shard of the sender under traffic, then recover. */
  kill: boolean;
  /** Times every QP moves to the next shard during the checked traffic. */
  moves: number;
  ips: [string, string];
}

export const QP_SHARDS_DEFAULTS: QpShardsOptions = { shards: 2, qps: 8, ops: 200, bytes: 4096, window: 16, kill: true, moves: 3, ips: ['127.0.38.1', '127.0.38.2'] };

export interface ShardShare {
  shard: number;
  /** The sender's QPs this shard runs. */
  qps: number;
  packetsSent: number;
  packetsReceived: number;
}

export interface QpShardsReport {
  demo: 'qp-shards';
  verified: boolean;
  shards: number;
  qps: number;
  completions: number;
  receives: number;
  bytesVerified: number;
  /** The sender's shards, what each ran at the end and carried. */
  sender: ShardShare[];
  /** QPs moved between shards during the traffic (both VMs). */
  qpMoves: number;
  kill: null | {
    shard: number;
    /** WRITEs of the killed shard's QPs that completed well before it died, and those flushed. */
    completedBefore: number;
    flushed: number;
    /** WRITEs of the other QPs, all completed well. */
    others: number;
    /** Checked operations run after the failed pairs were reset and connected again. */
    afterRecovery: number;
  };
  seconds: number;
}

export async function runQpShards(o: QpShardsOptions, say: (line: string) => void = () => {}): Promise<QpShardsReport> {
  const started = performance.now();
  const vms: Vm[] = [];
  try {
    for (const ip of o.ips) vms.push(await Vm.open({ ip, qpShards: o.shards }));
    const [va, vb] = vms;
    const s = va.verbs as ShardedVerbs;
    const a = await vmGuest(va, o.qps);
    const b = await vmGuest(vb, o.qps);
    await connectPair(a, b);
    say(`${o.ips[0]} and ${o.ips[1]}: ${o.shards} QP shards each (the device's thread and ${o.shards - 1} worker${o.shards > 2 ? 's' : ''}), ${o.qps} RC QP pairs`);
    const sb = vb.verbs as ShardedVerbs;
    const marks = Array.from({ length: o.moves }, (_, i) => (i + 1) / (o.moves + 1));
    let qpMoves = 0;
    const traffic = await runCheckedTraffic(a, b, {
      ops: o.ops, bytes: o.bytes, window: o.window, timeoutMs: 120_000,
      onProgress: (done) => {
        if (marks.length === 0 || done < marks[0]) return;
        marks.shift();
        for (const [v, g] of [[s, a], [sb, b]] as const) {
          for (const qp of g.qps) {
            v.moveQp(qp.qpn, ((v.ownerOf(qp.qpn) as number) + 1) % v.shardCount);
            qpMoves++;
          }
        }
        say(`  every QP of both VMs moved to the next shard (${qpMoves} moves so far)`);
      },
    });
    say(`checked traffic: ${traffic.sendCompletions} operations, ${traffic.bytesVerified.toLocaleString('en-US')} bytes verified in ${traffic.seconds.toFixed(2)} s`);
    const sender = s.shardCounters().map((c, shard) => ({ shard, qps: a.qps.filter((qp) => s.ownerOf(qp.qpn) === shard).length, packetsSent: c.sent, packetsReceived: c.received }));
    for (const x of sender) say(`  shard ${x.shard}: ${x.qps} QPs, ${x.packetsSent} packets sent, ${x.packetsReceived} received`);
    let kill: QpShardsReport['kill'] = null;
    let completions = traffic.sendCompletions;
    let receives = traffic.recvCompletions;
    let bytesVerified = traffic.bytesVerified;
    if (o.kill) {
      const shard = o.shards - 1;
      const onKilled = a.qps.map((qp) => s.ownerOf(qp.qpn) === shard);
      say(`terminating worker shard ${shard} of ${o.ips[0]} under a stream of WRITEs on every QP`);
      const run = await writesThroughKill(a, b, o.ops, () => s.killShard(shard));
      const ok = (st: CqeStatus[]): number => st.filter((x) => x === CqeStatus.Success).length;
      const flushed = run.statuses.reduce((n, st, q) => n + (onKilled[q] ? st.length - ok(st) : 0), 0);
      const bad = run.statuses.filter((st, q) => !onKilled[q] && ok(st) !== st.length);
      if (bad.length > 0) throw new Error('a QP on a shard that lived saw a failed completion');
      if (run.statuses.some((st, q) => onKilled[q] && st.slice(st.findIndex((x) => x !== CqeStatus.Success)).some((x) => x !== CqeStatus.WrFlushErr))) {
        throw new Error('a QP on the killed shard completed with something other than WR_FLUSH_ERR after its first failure');
      }
      const completedBefore = run.statuses.reduce((n, st, q) => n + (onKilled[q] ? ok(st) : 0), 0);
      const others = run.statuses.reduce((n, st, q) => n + (onKilled[q] ? 0 : st.length), 0);
      say(`  ${s.losses.replaced} successor started on the dead shard's socket; its QPs: ${completedBefore} WRITEs completed, ${flushed} flushed (WR_FLUSH_ERR); the others: ${others} completed`);
      await reconnectPairs(a, b, onKilled);
      const again = await runCheckedTraffic(a, b, { ops: Math.min(o.ops, 100), bytes: o.bytes, window: o.window, timeoutMs: 120_000 });
      say(`  the failed pairs reset and connected again: ${again.sendCompletions} checked operations on all ${o.qps} QPs`);
      kill = { shard, completedBefore, flushed, others, afterRecovery: again.sendCompletions };
      completions += run.statuses.reduce((n, st) => n + st.length, 0) + again.sendCompletions;
      receives += again.recvCompletions;
      bytesVerified += run.bytesVerified + again.bytesVerified;
    }
    return {
      demo: 'qp-shards', verified: true, shards: o.shards, qps: o.qps, completions, receives, bytesVerified, sender, qpMoves, kill,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
  } finally {
    for (const vm of vms) await vm.close();
  }
}
