// QP shards end to end (src/nic/shard, docs/worker-pool.md "QP shards"): VMs whose device runs
// its QPs in 2 or 4 threads, each shard with its own socket in the VM address's steering group,
// drive checked RC traffic (WRITEs and SENDs, every completion checked in posting order per QP,
// every byte compared) through real virtqueues and UDP. Each shard must carry its own QPs'
// packets; the facade's refusals and the lifecycle are checked too. Addresses 127.0.46.x.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { type PairGuest, connectPair, vmGuest } from '../../src/demo/durable-pair.js';
import { Vm } from '../../src/host/vm.js';
import { VerbsError, VerbsErrorCode } from '../../src/nic/errors.js';
import { QpType } from '../../src/nic/qp-state.js';
import { ShardedVerbs } from '../../src/nic/shard/sharded-verbs.js';
import { withNative } from '../native/with-native.js';

const open: Vm[] = [];
afterEach(async () => {
  for (const vm of open.splice(0)) await vm.close();
});

async function vm(ip: string, qpShards: number): Promise<Vm> {
  const v = await Vm.open({ ip, qpShards });
  open.push(v);
  return v;
}

function sharded(v: Vm): ShardedVerbs {
  assert.ok(v.verbs instanceof ShardedVerbs, `${v.ip} runs its QPs in shards`);
  return v.verbs;
}

/** Checked traffic between a and b over `qps` QP pairs; every shard of a sharded side carried its QPs. */
async function traffic(a: Vm, b: Vm, qps: number, ops = 200): Promise<{ ga: PairGuest; gb: PairGuest }> {
  const ga = await vmGuest(a, qps);
  const gb = await vmGuest(b, qps);
  await connectPair(ga, gb);
  const report = await runCheckedTraffic(ga, gb, { ops, bytes: 4096, window: 16, timeoutMs: 60_000 });
  assert.equal(report.sendCompletions, qps * ops);
  for (const [v, g] of [[a, ga], [b, gb]] as const) {
    if (!(v.verbs instanceof ShardedVerbs)) continue;
    const s = v.verbs;
    const perShard = s.shardCounters();
    const owners = new Set(g.qps.map((qp) => s.shardOf(qp.qpn)));
    assert.equal(owners.size, Math.min(qps, s.shardCount), `${v.ip}'s QPs are spread over its shards`);
    for (const i of owners) {
      assert.ok(perShard[i].received > 0 && perShard[i].sent > 0, `${v.ip} shard ${i} carried packets: ${JSON.stringify(perShard[i])}`);
    }
    // A packet the kernel steered to the wrong shard would be dropped there as for an unknown QP.
    // Duplicates are go-back-N's ordinary leftovers on a loaded machine.
    for (const [i, c] of perShard.entries()) {
      const odd = c.dropped.filter(([why]) => !/^duplicate/.test(why));
      assert.deepEqual(odd, [], `${v.ip} shard ${i} dropped only duplicates`);
    }
    assert.equal(v.verbs.counters.internalErrors, 0);
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
    const s = sharded(a);
    assert.throws(() => a.device.saveState(), (e: unknown) => e instanceof Error && /shards/.test(e.message));
    // A QP on an SRQ runs on shard 0 with its SRQ: a chosen odd QPN cannot have one.
    const pd = s.allocPd();
    const cq = s.createCq(16);
    const srq = s.createSrq(pd, 16, 1, 0);
    const cap = { maxSendWr: 4, maxRecvWr: 0, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
    assert.throws(() => s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, srq, cap, sigAll: false, qpn: 0x41 }),
      (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NotSupported);
    const onSrq = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, srq, cap, sigAll: false });
    assert.equal(s.shardOf(onSrq), 0);
    // Objects every shard holds are refused alike, and one in use stays.
    assert.throws(() => s.destroyCq(cq), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Busy);
    assert.throws(() => s.deallocPd(9999), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NoSuchObject);
    const odd = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap: { ...cap, maxRecvWr: 4 }, sigAll: false, qpn: 0x41 });
    assert.equal(s.shardOf(odd), 1);
    assert.throws(() => s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x41 }),
      (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.Exists);
    // An error from a worker shard crosses as the VerbsError it was.
    assert.throws(() => s.postSend(odd, [{ wrId: 1n, opcode: 99 as never, flags: 0, sgList: [] }]), (e: unknown) => e instanceof VerbsError);
    s.destroyQp(odd);
    s.destroyQp(onSrq);
    s.destroySrq(srq);
    s.destroyCq(cq);
    s.deallocPd(pd);
    await assert.rejects(Vm.open({ ip: '127.0.46.6', qpShards: 2, lossy: { drop: 0.1 } }), /does not go with lossy/);
    await assert.rejects(Vm.open({ ip: '127.0.46.6', qpShards: 99 }), RangeError);
    // Still serving: traffic after the refusals.
    const b = await vm('127.0.46.6', 2);
    await traffic(a, b, 2, 60);
  }));

  it('closing releases every shard\'s socket; a lost shard is reported and its QPs refuse work', withNative(async () => {
    const a = await Vm.open({ ip: '127.0.46.7', qpShards: 3 });
    await a.close();
    // Every member left the group: a plain socket binds the address now.
    const again = await vm('127.0.46.7', 1);
    await again.close();
    const b = await vm('127.0.46.8', 2);
    const s = sharded(b);
    const pd = s.allocPd();
    const cq = s.createCq(16);
    const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
    const odd = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x51 });
    const even = s.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x52 });
    await s.killShard(1);
    assert.match(s.lost ?? '', /shard 1/);
    assert.throws(() => s.queryQp(odd), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.IoError);
    assert.equal(s.queryQp(even).qpState, s.queryQp(even).qpState);
  }));
});
