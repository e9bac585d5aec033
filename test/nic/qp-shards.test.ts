// QP shards end to end (src/nic/shard, docs/worker-pool.md "QP shards"): VMs whose device runs
// its QPs in 2 or 4 threads, each shard with its own socket in the VM address's steering group,
// drive checked RC traffic (WRITEs and SENDs, every completion checked in posting order per QP,
// every byte compared) through real virtqueues and UDP. Each shard must carry its own QPs'
// packets; QPs move between shards under traffic (by hand and by the balancer); a worker shard is
// killed under traffic and replaced; the facade's refusals and the lifecycle are checked too.
// Addresses 127.0.46.x.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { type PairGuest, connectPair, vmGuest } from '../../src/demo/durable-pair.js';
import { reconnectPairs, writesThroughKill } from '../../src/demo/shard-kill.js';
import { CqeStatus } from '../../src/device/abi.js';
import { Vm, type VmOptions } from '../../src/host/vm.js';
import { VerbsError, VerbsErrorCode } from '../../src/nic/errors.js';
import { QpAttr, QpState, QpType } from '../../src/nic/qp-state.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { BatchedUdpLink } from '../../src/net/batched-udp-link.js';
import { WcOpcode, WcStatus } from '../../src/nic/types.js';
import type { WorkCompletion } from '../../src/nic/verbs.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShardedVerbs } from '../../src/nic/shard/sharded-verbs.js';
import type { ShardCounters } from '../../src/nic/shard/shard-methods.js';
import { withNative } from '../native/with-native.js';

const open: Vm[] = [];

/** A bare facade of `shards` shards on `ip` (no device above it), closed however `fn` ends. */
async function withFacade(ip: string, shards: number, fn: (s: ShardedVerbs) => Promise<void>): Promise<void> {
  const dm = DeviceMemory.create({ ramBytes: 4 << 20, arenaBytes: 4 << 20 });
  dm.addRegion(0, 4 << 20);
  const link = await BatchedUdpLink.open({ ip, qpnSteering: shards });
  let s: ShardedVerbs | null = null;
  try {
    s = await ShardedVerbs.open(dm, link, { shards });
    await fn(s);
  } finally {
    s?.close();
    await link.close();
    await s?.stopped;
  }
}

/** Poll `cq` until `n` completions came, or fail after 5 s. */
async function pollUntil(s: ShardedVerbs, cq: number, n: number): Promise<WorkCompletion[]> {
  const got: WorkCompletion[] = [];
  const deadline = Date.now() + 5000;
  while (got.length < n) {
    got.push(...s.pollCq(cq, n - got.length));
    if (Date.now() > deadline) assert.fail(`${got.length} of ${n} completions in 5 s`);
    await sleep(2);
  }
  return got;
}
afterEach(async () => {
  for (const vm of open.splice(0)) await vm.close();
});

async function vm(ip: string, qpShards: number, more: Omit<VmOptions, 'ip' | 'qpShards'> = {}): Promise<Vm> {
  const v = await Vm.open({ ...more, ip, qpShards });
  open.push(v);
  return v;
}

/** VM a (`shardsA` shards) and VM b (`shardsB`), with `qps` QP pairs set up and connected. */
async function connected(ipA: string, shardsA: number, ipB: string, shardsB: number, qps: number, moreA: Omit<VmOptions, 'ip' | 'qpShards'> = {}): Promise<{ a: Vm; b: Vm; ga: PairGuest; gb: PairGuest }> {
  const a = await vm(ipA, shardsA, moreA);
  const b = await vm(ipB, shardsB);
  const ga = await vmGuest(a, qps);
  const gb = await vmGuest(b, qps);
  await connectPair(ga, gb);
  return { a, b, ga, gb };
}

/**
 * Checked traffic between a and b over `qps` QP pairs (set up here unless given); every shard of
 * a sharded side carried its QPs.
 */
async function traffic(a: Vm, b: Vm, qps: number, ops = 200, given?: { ga: PairGuest; gb: PairGuest }): Promise<{ ga: PairGuest; gb: PairGuest }> {
  const ga = given?.ga ?? (await vmGuest(a, qps));
  const gb = given?.gb ?? (await vmGuest(b, qps));
  if (given === undefined) await connectPair(ga, gb);
  const sides = ([[a, ga], [b, gb]] as const).filter(([v]) => v.verbs instanceof ShardedVerbs).map(([v, g]) => ({ v, g, s: v.verbs as ShardedVerbs }));
  const before = sides.map(({ s }) => s.shardCounters());
  const report = await runCheckedTraffic(ga, gb, { ops, bytes: 4096, window: 16, timeoutMs: 60_000 });
  assert.equal(report.sendCompletions, qps * ops);
  for (const [k, { v, g, s }] of sides.entries()) {
    const perShard = s.shardCounters();
    const unknown = (c: ShardCounters): number => c.dropped.find(([why]) => why === 'unknown QPN')?.[1] ?? 0;
    const owners = new Set(g.qps.map((qp) => s.shardOf(qp.qpn)));
    assert.equal(owners.size, Math.min(qps, s.shardCount), `${v.ip}'s QPs are spread over its shards`);
    for (const i of owners) {
      assert.ok(perShard[i].received > before[k][i].received && perShard[i].sent > before[k][i].sent, `${v.ip} shard ${i} carried packets: ${JSON.stringify(perShard[i])}`);
    }
    // A packet the kernel steered to the wrong shard would be dropped there as for an unknown QP.
    // (Duplicates and packets out of sequence are go-back-N's ordinary leftovers on a loaded machine.)
    for (const [i, c] of perShard.entries()) assert.equal(unknown(c) - unknown(before[k][i]), 0, `${v.ip} shard ${i} had no packet for another shard's QP`);
    assert.equal(s.counters.internalErrors, 0);
  }
  return { ga, gb };
}

describe('QP shards', { concurrency: false }, () => {
  it('two VMs with 2 shards each: 8 QP pairs of checked traffic, each QP on its own shard', withNative(async () => {
    const a = await vm('127.0.46.1', 2);
    const b = await vm('127.0.46.2', 2);
    await traffic(a, b, 8);
  }));

  it('4 shards against an unsharded VM: the wire is the same', withNative(async () => {
    const a = await vm('127.0.46.3', 4);
    const b = await vm('127.0.46.4', 1);
    await traffic(a, b, 6);
    await traffic(b, a, 2, 100);
  }));

  it('refuses what shards do not do yet, clearly, and keeps serving', withNative(async () => {
    const a = await vm('127.0.46.5', 2);
    assert.throws(() => a.device.saveState(), (e: unknown) => e instanceof Error && /shards/.test(e.message));
    await assert.rejects(Vm.open({ ip: '127.0.46.6', qpShards: 2, lossy: { drop: 0.1 } }), /does not go with lossy/);
    await assert.rejects(Vm.open({ ip: '127.0.46.6', qpShards: 99 }), RangeError);
    // Still serving: traffic after the refusals.
    const b = await vm('127.0.46.6', 2);
    await traffic(a, b, 2, 60);
  }));

  it('the facade: objects on every shard alike, QPs on their own, refusals as the provider\'s', withNative(async () => {
    await withFacade('127.0.46.9', 2, async (s) => {
      const pd = s.allocPd();
      const cq = s.createCq(16);
      const srq = s.createSrq(pd, 16, 1, 0);
      const cap = { maxSendWr: 4, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
      // A QP on an SRQ runs on shard 0 with its SRQ: a chosen odd QPN cannot have one.
      assert.throws(() => s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, srq, cap, sigAll: false, qpn: 0x41 }),
        (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NotSupported);
      const onSrq = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, srq, cap, sigAll: false });
      assert.equal(s.shardOf(onSrq), 0);
      assert.throws(() => s.moveQp(onSrq, 1), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NotSupported, 'it stays with its SRQ');
      assert.equal(s.ownerOf(onSrq), 0);
      assert.throws(() => s.destroyCq(cq), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Busy);
      assert.throws(() => s.deallocPd(9999), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NoSuchObject);
      const odd = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap: { ...cap, maxRecvWr: 4 }, sigAll: false, qpn: 0x41 });
      assert.equal(s.shardOf(odd), 1);
      assert.throws(() => s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x41 }),
        (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Exists);
      // An error from a worker shard's call crosses as the VerbsError it was.
      assert.throws(() => s.modifyQp(odd, { qpState: QpState.Rts }, QpAttr.STATE), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.InvalidArgument);
      // A post a worker shard refuses (a receive to a QP in RESET) comes back as a LOC_QP_OP_ERR completion.
      s.postRecv(odd, [{ wrId: 77n, sgList: [] }]);
      const wcs = await pollUntil(s, cq, 1);
      assert.deepEqual(wcs.map((w) => [w.wrId, w.status, w.opcode, w.qpNum]), [[77n, WcStatus.LocQpOpErr, WcOpcode.Recv, odd]]);
      s.destroyQp(odd);
      s.destroyQp(onSrq);
      s.destroySrq(srq);
      s.destroyCq(cq);
      s.deallocPd(pd);
    });
  }));

  it('closing releases every shard\'s socket', withNative(async () => {
    const a = await Vm.open({ ip: '127.0.46.7', qpShards: 3 });
    await a.close();
    // Every member left the group: a plain socket binds the address now.
    const again = await vm('127.0.46.7', 1);
    await again.close();
  }));

  it('a worker shard that dies is replaced on its socket; its QPs\' work completes with WR_FLUSH_ERR, and from RESET they run again', withNative(async () => {
    await withFacade('127.0.46.8', 2, async (s) => {
      const pd = s.allocPd();
      const cq = s.createCq(16);
      const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
      const odd = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x51 });
      const even = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x52 });
      const init = { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 };
      const initMask = QpAttr.STATE | QpAttr.PKEY_INDEX | QpAttr.PORT | QpAttr.ACCESS_FLAGS;
      s.modifyQp(odd, init, initMask);
      s.postRecv(odd, [{ wrId: 1n, sgList: [] }, { wrId: 2n, sgList: [] }]);
      assert.equal(s.queryQp(odd).qpState, QpState.Init);
      await s.killShard(1);
      assert.deepEqual({ ...s.losses, last: undefined }, { lost: 1, replaced: 1, last: undefined });
      assert.match(s.losses.last ?? '', /shard 1/);
      // Both receives complete, flushed; the QP reads as ERR and refuses anything but RESET.
      const flushed = await pollUntil(s, cq, 2);
      assert.deepEqual(flushed.map((w) => [w.wrId, w.status, w.qpNum]), [[1n, WcStatus.WrFlushErr, odd], [2n, WcStatus.WrFlushErr, odd]]);
      assert.equal(s.queryQp(odd).qpState, QpState.Err);
      assert.throws(() => s.modifyQp(odd, { qpState: QpState.Rtr }, QpAttr.STATE), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.InvalidArgument);
      s.postRecv(odd, [{ wrId: 3n, sgList: [] }]);
      assert.deepEqual((await pollUntil(s, cq, 1)).map((w) => [w.wrId, w.status]), [[3n, WcStatus.WrFlushErr]]);
      // RESET makes it again on the successor, which holds the objects every shard holds.
      s.modifyQp(odd, { qpState: QpState.Reset }, QpAttr.STATE);
      assert.equal(s.queryQp(odd).qpState, QpState.Reset);
      s.modifyQp(odd, init, initMask);
      assert.equal(s.queryQp(odd).qpState, QpState.Init);
      const another = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x53 });
      assert.equal(s.shardOf(another), 1);
      assert.equal(s.queryQp(even).qpState, QpState.Reset);
      for (const q of [odd, even, another]) s.destroyQp(q);
      s.destroyCq(cq);
      s.deallocPd(pd);
    });
    // The successor's socket (the dead shard's, adopted) was closed with the rest.
    const plain = await BatchedUdpLink.open({ ip: '127.0.46.8' });
    await plain.close();
    // Closed while a successor is starting: everything stops, and the address is free again.
    const dm = DeviceMemory.create({ ramBytes: 4 << 20, arenaBytes: 4 << 20 });
    dm.addRegion(0, 4 << 20);
    const link = await BatchedUdpLink.open({ ip: '127.0.46.8', qpnSteering: 2 });
    const s = await ShardedVerbs.open(dm, link, { shards: 2 });
    const killing = s.killShard(1);
    for (let i = 0; i < 500 && s.losses.lost === 0; i++) await sleep(2);
    assert.equal(s.losses.lost, 1);
    s.close();
    await link.close();
    const settled = await Promise.race([Promise.all([s.stopped, killing]).then(() => true), sleep(10_000).then(() => false)]);
    assert.ok(settled, 'closing while a successor starts ends');
    const again = await BatchedUdpLink.open({ ip: '127.0.46.8' });
    await again.close();
  }));

  it('a worker shard killed under traffic: its QPs fail cleanly, the others finish, and reset and reconnected they all run again', withNative(async () => {
    const { a, b, ga, gb } = await connected('127.0.46.10', 2, '127.0.46.11', 2, 4);
    const s = a.verbs as ShardedVerbs;
    // One of shard 0's QPs moves onto shard 1 first: it dies with the shard it runs on now.
    const moved = ga.qps.find((qp) => s.ownerOf(qp.qpn) === 0)!;
    s.moveQp(moved.qpn, 1);
    const onShard1 = ga.qps.map((qp) => s.ownerOf(qp.qpn) === 1);
    assert.deepEqual(onShard1.filter(Boolean).length, 3);
    const { statuses, bytesVerified } = await writesThroughKill(ga, gb, 300, () => s.killShard(1));
    for (const [q, st] of statuses.entries()) {
      const firstBad = st.findIndex((x) => x !== CqeStatus.Success);
      if (!onShard1[q]) {
        assert.equal(firstBad, -1, `QP ${q} on the shard that lived completed every WRITE`);
        assert.equal(st.length, 300);
        continue;
      }
      assert.ok(firstBad >= 0, `QP ${q} on the killed shard failed`);
      assert.ok(st.slice(firstBad).every((x) => x === CqeStatus.WrFlushErr), `QP ${q}: after its shard died, only flushed work`);
    }
    // The WRITEs that completed well landed (writesThroughKill compared them), on every QP.
    assert.equal(bytesVerified, statuses.flat().filter((x) => x === CqeStatus.Success).length * 4096);
    assert.deepEqual({ lost: s.losses.lost, replaced: s.losses.replaced }, { lost: 1, replaced: 1 });
    // Reset and reconnect the failed pairs: checked traffic on every QP, the successor's included.
    await reconnectPairs(ga, gb, onShard1);
    await traffic(a, b, 4, 100, { ga, gb });
  }));

  it('any shard takes any QP: QPs moved round the shards under checked traffic, under their ownership words', withNative(async () => {
    const { a, b, ga, gb } = await connected('127.0.46.12', 3, '127.0.46.13', 2, 6);
    const sa = a.verbs as ShardedVerbs;
    const sb = b.verbs as ShardedVerbs;
    let moves = 0;
    const marks = [0.15, 0.3, 0.45, 0.6, 0.75];
    const report = await runCheckedTraffic(ga, gb, {
      ops: 300, bytes: 4096, window: 16, timeoutMs: 60_000,
      onProgress: (done) => {
        if (marks.length === 0 || done < marks[0]) return;
        marks.shift();
        // Every QP of both VMs to the next shard, the sender's and the receiver's, while WRITEs and SENDs are in flight.
        for (const [s, g] of [[sa, ga], [sb, gb]] as const) {
          for (const qp of g.qps) {
            const from = s.ownerOf(qp.qpn) as number;
            s.moveQp(qp.qpn, (from + 1) % s.shardCount);
            moves++;
          }
        }
      },
    });
    assert.equal(report.sendCompletions, 6 * 300);
    assert.equal(moves, 5 * 12);
    // Five moves round three shards and round two: each QP ends two shards (mod 3) and one shard (mod 2) from home.
    for (const qp of ga.qps) assert.equal(sa.ownerOf(qp.qpn), (sa.shardOf(qp.qpn) + 5) % 3);
    for (const qp of gb.qps) assert.equal(sb.ownerOf(qp.qpn), (sb.shardOf(qp.qpn) + 5) % 2);
    assert.deepEqual([...sa.placement()].map(([qpn, shard]) => sa.ownerOf(qpn) === shard), ga.qps.map(() => true));
    // Away from home, the kernel steers a QP's packets to where it runs now: checked traffic again, and no shard saw a packet for a QP it does not hold.
    const before = [sa.shardCounters(), sb.shardCounters()];
    await runCheckedTraffic(ga, gb, { ops: 100, bytes: 4096, window: 16, timeoutMs: 60_000 });
    for (const [k, s] of [sa, sb].entries()) {
      s.shardCounters().forEach((c, i) => {
        const unknown = (x: ShardCounters): number => x.dropped.find(([why]) => why === 'unknown QPN')?.[1] ?? 0;
        assert.equal(unknown(c) - unknown(before[k][i]), 0, `shard ${i} got no packet for a QP it does not hold`);
      });
    }
    // A QP that is not connected cannot move; one cannot move to a shard that does not exist. Neither changes its word.
    const pd = sa.allocPd();
    const cq = sa.createCq(8);
    const idle = sa.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 }, sigAll: false });
    const home = sa.ownerOf(idle);
    assert.throws(() => sa.moveQp(idle, ((home as number) + 1) % 3), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.InvalidArgument);
    assert.throws(() => sa.moveQp(ga.qps[0].qpn, 7), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.InvalidArgument);
    assert.equal(sa.ownerOf(idle), home);
    sa.destroyQp(idle);
    assert.equal(sa.ownerOf(idle), null);
  }));

  it('work stealing: two busy QPs on one shard are spread by balance(), idle ones stay, traffic stays checked', withNative(async () => {
    const { a, ga, gb } = await connected('127.0.46.14', 2, '127.0.46.15', 2, 4);
    const s = a.verbs as ShardedVerbs;
    // The busy pairs: a's QPs 0 and 2, both on shard 0 (QPNs are handed out in turn round the shards).
    const busy = [0, 2];
    assert.deepEqual(busy.map((i) => s.ownerOf(ga.qps[i].qpn)), [0, 0]);
    const only = (g: PairGuest): PairGuest => ({ ...g, qps: busy.map((i) => g.qps[i]) });
    s.balance();
    await runCheckedTraffic(only(ga), only(gb), { ops: 200, bytes: 4096, window: 16, timeoutMs: 60_000 });
    const moves = s.balance();
    assert.equal(moves.length, 1, `one busy QP moves: ${JSON.stringify(moves)}`);
    assert.equal(moves[0].from, 0);
    assert.equal(moves[0].to, 1);
    assert.ok(busy.map((i) => ga.qps[i].qpn).includes(moves[0].qpn));
    assert.deepEqual(new Set(busy.map((i) => s.ownerOf(ga.qps[i].qpn))), new Set([0, 1]), 'the busy QPs on two shards now');
    assert.deepEqual([1, 3].map((i) => s.ownerOf(ga.qps[i].qpn)), [1, 1], 'idle QPs stay');
    const before = s.shardCounters();
    await runCheckedTraffic(only(ga), only(gb), { ops: 200, bytes: 4096, window: 16, timeoutMs: 60_000 });
    const after = s.shardCounters();
    for (const i of [0, 1]) assert.ok(after[i].sent - before[i].sent >= 200, `shard ${i} now sends a busy QP's WRITEs and SENDs`);
    // Even work: nothing more to move.
    assert.deepEqual(s.balance(), []);
    assert.equal(s.balanceMoves, 1);
  }));

  it('work stealing on a timer (qpBalanceMs): the busy QPs end up on different shards while checked traffic runs', withNative(async () => {
    const { a, ga, gb } = await connected('127.0.46.16', 2, '127.0.46.17', 1, 4, { qpBalanceMs: 20 });
    const s = a.verbs as ShardedVerbs;
    const busy = [0, 2];
    const only = (g: PairGuest): PairGuest => ({ ...g, qps: busy.map((i) => g.qps[i]) });
    for (let round = 0; round < 20 && s.balanceMoves === 0; round++) {
      await runCheckedTraffic(only(ga), only(gb), { ops: 100, bytes: 4096, window: 16, timeoutMs: 60_000 });
    }
    assert.ok(s.balanceMoves >= 1, 'the balancer moved a busy QP');
    assert.deepEqual(new Set(busy.map((i) => s.ownerOf(ga.qps[i].qpn))), new Set([0, 1]));
  }));

  it('stress: 16 QP pairs over 4 shards each, QPs moved to random shards ten times under checked traffic', withNative(async () => {
    const { a, b, ga, gb } = await connected('127.0.46.18', 4, '127.0.46.19', 4, 16);
    const sides = [[a.verbs as ShardedVerbs, ga], [b.verbs as ShardedVerbs, gb]] as const;
    // A fixed sequence of pseudo-random choices (xorshift), so a failure replays.
    let x = 0x9e3779b9;
    const next = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const marks = Array.from({ length: 10 }, (_, i) => (i + 1) / 11);
    let moves = 0;
    const report = await runCheckedTraffic(ga, gb, {
      ops: 120, bytes: 1024, window: 8, timeoutMs: 120_000,
      onProgress: (done) => {
        if (marks.length === 0 || done < marks[0]) return;
        marks.shift();
        for (const [s, g] of sides) {
          for (let k = 0; k < 6; k++) {
            const qpn = g.qps[next(g.qps.length)].qpn;
            const to = next(4);
            if (to !== s.ownerOf(qpn)) moves++;
            s.moveQp(qpn, to);
          }
        }
      },
    });
    assert.equal(report.sendCompletions, 16 * 120);
    assert.ok(moves >= 60, `${moves} QPs changed shards`);
    for (const [s, g] of sides) {
      for (const qp of g.qps) assert.equal(s.ownerOf(qp.qpn), s.placement().get(qp.qpn), 'every word says where its QP runs');
      assert.equal(s.counters.internalErrors, 0);
    }
  }));
});
