// Live migration of VMs whose devices run as durable backends in a worker pool (durable-vm.ts),
// over the real coordinator (TCP), real UDP and real worker threads, with checked RC traffic both
// ways on every QP (SEND/RECV, WRITE with immediate, READ, fetch-add) while the VM moves. Every
// work request must complete once, in order, with its bytes; every WRITE target and atomic
// counter must end as the peer left it. The device's writes are logged from its worker into a
// log this thread harvests; a VM of either sort (device in this thread, or in a pool) migrates
// into the other; a destination that refuses the VM leaves it running at the source.
import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { BACKEND_RINGS } from '../../src/backend/device-backend.js';
import { DurableVm } from '../../src/backend/durable-vm.js';
import { Vm } from '../../src/host/vm.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import type { DestinationVm, MigrateOutOptions, RestoreParts, SourceVm } from '../../src/migration/index.js';
import { QpState } from '../../src/nic/qp-state.js';
import type { Verbs } from '../../src/nic/verbs.js';
import { VIRTIO_F_RING_PACKED } from '../../src/virtio/queue.js';
import type { RcTraffic, TrafficConfig } from '../migration/rc-traffic.js';
import { receivesOf } from '../migration/rc-traffic.js';
import { type TrafficVm, badWrites, connectTraffic, moveWithTraffic, setUpTraffic } from './traffic-vms.js';

const QPS = 4;
const OPS = 400;
const config = (side: number): TrafficConfig => ({ side, messageBytes: 2048, window: 8, recvDepth: 16, slots: 8, ops: OPS });
// A local ACK timeout of 2^16 × 4.096 µs (0.27 s): guests, coordinator and backends share two cores.
const ATTRS = { timeout: 16 };
const HOST = '127.0.35.60';

type AnyVm = TrafficVm & SourceVm & DestinationVm & { readonly verbs: Pick<Verbs, 'queryQp'> };

const pools: BackendPool[] = [];
function pool(workers = 1): BackendPool {
  const p = new BackendPool({ workers });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

/** VMs a test opened: closed after it, last first, however it ended. */
const opened: { close(): Promise<void> }[] = [];
function keep<V extends { close(): Promise<void> }>(vm: V): V {
  opened.push(vm);
  return vm;
}
afterEach(async () => {
  for (const vm of opened.splice(0).reverse()) await vm.close();
});

/** Two VMs with checked traffic between them, running. */
async function pair(a: AnyVm, b: AnyVm): Promise<{ ta: RcTraffic; tb: RcTraffic }> {
  const [sa, sb] = [await setUpTraffic(a, QPS, config(0)), await setUpTraffic(b, QPS, config(1))];
  const ta = await connectTraffic(a, sa, { ip: b.ip, ...sb }, config(0), ATTRS);
  const tb = await connectTraffic(b, sb, { ip: a.ip, ...sa }, config(1), ATTRS);
  ta.start();
  tb.start();
  return { ta, tb };
}

async function progress(t: RcTraffic, completed: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (t.state.qps.some((q) => q.completed < completed)) {
    if (Date.now() > deadline) throw new Error(`no progress: ${JSON.stringify(t.state.qps.map((q) => q.completed))}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Move `src` (running traffic `t`) to a VM built by `restore` on this host. */
function move<V extends AnyVm>(src: AnyVm, t: RcTraffic, restore: (parts: RestoreParts) => Promise<V>, options: Pick<MigrateOutOptions, 'onProgress' | 'precopy'> = {}) {
  return moveWithTraffic(src, t, { host: HOST, restore: async (parts) => keep(await restore(parts)), vet: (parts) => DurableVm.vet(parts) }, { blackoutWatchMs: 2000, ...options });
}

/** Both sides finish and verify: every completion once, in order, with its bytes; targets as the peer left them. */
async function finishAndVerify(a: AnyVm, ta: RcTraffic, b: AnyVm, tb: RcTraffic): Promise<void> {
  await Promise.all([ta.finished(60_000), tb.finished(60_000)]);
  const [sa, sb] = [await ta.pause(), await tb.pause()];
  assert.deepEqual(sa.violations, [], 'the migrated VM saw every completion once, in order, with the right bytes');
  assert.deepEqual(sb.violations, [], 'the peer saw every completion once, in order, with the right bytes');
  for (const s of [sa, sb]) assert.ok(s.qps.every((q) => q.completed === OPS && q.received === receivesOf(OPS)));
  assert.deepEqual(badWrites(a, sa, 1), [], 'WRITE targets and counters at the migrated VM');
  assert.deepEqual(badWrites(b, sb, 0), [], 'WRITE targets and counters at the peer');
  for (const vm of [a, b]) {
    for (const qpn of vm.guest.qps.keys()) assert.equal(vm.verbs.queryQp(qpn).qpState, QpState.Rts, `${vm.ip} QP ${qpn}`);
  }
}

describe('live migration of durable VMs', () => {
  for (const socket of ['worker', 'main'] as const) {
    it(`moves a durable VM to another pool mid-traffic (socket held by ${socket === 'main' ? "the pool's thread" : 'the worker'})`, async () => {
      const base = socket === 'worker' ? 61 : 63;
      const [ipSrc, ipPeer] = [`127.0.35.${base}`, `127.0.35.${base + 1}`];
      const src = keep(await DurableVm.open(pool(), { ip: ipSrc, socket }));
      const peer = keep(await Vm.open({ ip: ipPeer }));
      const destPool = pool();
      const { ta, tb } = await pair(src, peer);
      const qpns = [...src.guest.qps.keys()];
      await progress(ta, 60);
      const { vm: dst, traffic, report } = await move(src, ta, (parts) => DurableVm.restore(destPool, parts, { socket }));
      assert.ok(dst.durable.threadId !== src.durable.threadId, 'the device runs in the other pool now');
      assert.deepEqual([...dst.guest.qps.keys()], qpns, 'the same QPs, by number');
      assert.ok(report.rounds.length >= 2 && report.rounds.at(-1)!.final);
      assert.ok(report.deviceStateBytes > 0 && report.guestStateBytes > 0);
      assert.ok(report.rounds[0].pages > 0 && report.downtimeMs > 0);
      assert.equal(report.blackout.perQp.length, QPS);
      assert.ok(report.blackout.perQp.every((q) => q.ms !== null), `each QP's first completion, seen in the destination's worker: ${JSON.stringify(report.blackout)}`);
      await finishAndVerify(dst, traffic, peer, tb);
    });
  }

  it('marks the pages its worker writes in a log this thread harvests', async () => {
    const [ipA, ipB] = ['127.0.35.65', '127.0.35.66'];
    const a = keep(await DurableVm.open(pool(), { ip: ipA }));
    const b = keep(await Vm.open({ ip: ipB }));
    const { ta, tb } = await pair(a, b);
    assert.equal(a.dirtyLog.enabled, false);
    a.dirtyLog.start();
    a.cpuLog.start();
    await Promise.all([ta.finished(60_000), tb.finished(60_000)]);
    const device = new Set(a.dirtyLog.harvest());
    const cpu = new Set(a.cpuLog.harvest());
    // Every peer WRITE lands in the write areas, and every receive in the receive buffers: the
    // device wrote them, from its worker.
    for (const q of ta.state.qps) {
      for (const at of [q.writeArea, q.recvBase]) assert.ok(device.has(Math.floor(at / 4096)), `page of ${at.toString(16)} written by the device`);
      assert.ok(cpu.has(Math.floor(q.sendBase / 4096)), 'the guest wrote its send buffers');
    }
    assert.equal(a.dirtyLog.overflowed, false);
    a.dirtyLog.stop();
    a.cpuLog.stop();
  });

  it('moves a VM on packed rings from this thread into a pool and back out, mid-traffic', async () => {
    const [ipSrc, ipPeer] = ['127.0.35.67', '127.0.35.68'];
    // Both sorts offer the same ring formats (BACKEND_RINGS is a Vm's default), so the guest keeps its packed rings.
    assert.deepEqual([...BACKEND_RINGS].sort(), ['packed', 'split']);
    const src = keep(await Vm.open({ ip: ipSrc, open: { packed: true } }));
    assert.ok(src.guest.has(VIRTIO_F_RING_PACKED));
    const peer = keep(await DurableVm.open(pool(), { ip: ipPeer }));
    const into = pool();
    const { ta, tb } = await pair(src, peer);
    await progress(ta, 40);
    const first = await move(src, ta, (parts) => DurableVm.restore(into, parts));
    assert.ok(first.vm.guest.has(VIRTIO_F_RING_PACKED), 'the durable VM runs on packed rings');
    await progress(first.traffic, 150);
    const back = await move(first.vm, first.traffic, (parts) => Vm.restore(parts));
    assert.ok(back.vm.guest.has(VIRTIO_F_RING_PACKED));
    await finishAndVerify(back.vm, back.traffic, peer, tb);
  });

  it('keeps the VM at the source when the destination refuses it: QPs resumed, address bound again', async () => {
    const [ipSrc, ipPeer] = ['127.0.35.69', '127.0.35.70'];
    const src = keep(await DurableVm.open(pool(), { ip: ipSrc }));
    const peer = keep(await Vm.open({ ip: ipPeer }));
    const { ta, tb } = await pair(src, peer);
    await progress(ta, 60);
    await assert.rejects(move(src, ta, async () => {
      throw new Error('no room here');
    }), /no room here/);
    assert.equal(src.durable.addressReleased, false);
    await finishAndVerify(src, ta, peer, tb);
  });

  it("migrates through the death of the source's worker in pre-copy: the restored backend keeps logging", async () => {
    const [ipSrc, ipPeer] = ['127.0.35.71', '127.0.35.72'];
    // Its only worker: the device comes back on the replacement piscina boots, while the
    // coordinator waits for it (SourceVm.settle) before its synchronous steps.
    const srcPool = pool(1);
    const src = keep(await DurableVm.open(srcPool, { ip: ipSrc }));
    const peer = keep(await Vm.open({ ip: ipPeer }));
    const destPool = pool();
    let killed: Promise<number> | null = null;
    const { ta, tb } = await pair(src, peer);
    await progress(ta, 40);
    const { vm: dst, traffic } = await move(src, ta, (parts) => DurableVm.restore(destPool, parts), {
      // Rounds until the limit, whatever the traffic dirties: the kill lands between two of them.
      precopy: { stopBelowPages: 0, maxRounds: 4 },
      onProgress: (p) => {
        if (p.phase === 'precopy' && p.round === 1 && killed === null) killed = srcPool.terminateWorkerOf(src.durable);
      },
    });
    assert.ok(killed !== null, 'the worker was terminated during pre-copy');
    await killed;
    assert.equal(src.durable.restarts, 1, 'the source device came back from its journal once');
    await finishAndVerify(dst, traffic, peer, tb);
  });

  it('refuses a damaged migrated state: nothing is left running or bound, and the pool serves on', async () => {
    const p = pool();
    const ip = '127.0.35.73';
    const scratch = () => {
      const dm = DeviceMemory.create({ ramBytes: 32 << 20, arenaBytes: 8 << 20 });
      dm.addRegion(0, 32 << 20);
      return dm;
    };
    const donor = keep(await DurableVm.open(p, { ip }));
    await setUpTraffic(donor, 2, config(0));
    const deviceState = donor.device.saveState();
    const guestState = donor.saveGuestState();
    await donor.close();
    const flipped = deviceState.slice();
    flipped[Math.floor(flipped.length / 2)] ^= 0x40;
    const cases: [string, Uint8Array, Uint8Array][] = [
      ['a flipped byte', flipped, guestState],
      ['a truncated state', deviceState.subarray(0, deviceState.length - 100), guestState],
      ['random bytes', Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919) & 0xff), guestState],
      ['a guest state of another kind', deviceState, new TextEncoder().encode('{"kind":"something-else"}')],
    ];
    for (const [what, ds, gs] of cases) {
      await assert.rejects(DurableVm.restore(p, { ip, dm: scratch(), deviceState: ds, guestState: gs }), Error, what);
    }
    // The intact state restores, on the address the refused ones never kept.
    const vm = keep(await DurableVm.restore(p, { ip, dm: scratch(), deviceState, guestState }));
    assert.deepEqual([...vm.guest.qps.keys()].length, 2);
    for (const qpn of vm.guest.qps.keys()) assert.equal(vm.verbs.queryQp(qpn).qpState, QpState.Reset, 'as they were saved');
  });
});
