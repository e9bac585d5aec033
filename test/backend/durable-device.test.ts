// Durable device backends end to end: guests on this thread drive devices that run in a piscina
// pool's workers, over real UDP. A worker killed mid-traffic costs nothing a guest or peer can
// see: the device comes back from its journal on a live worker and every work request completes
// once, in order, with its data.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';
import { CallClient } from '../../src/backend/call-channel.js';
import { CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { gpa } from '../../src/memory/gpa.js';
import { pattern } from '../e2e/pattern.js';
import { runCheckedTraffic } from '../../src/demo/checked-traffic.js';
import { ACCESS, DATA, type DurableGuest, IOVA, connectPair, durableGuest, withPool } from '../../src/demo/durable-pair.js';
import { RdmaGuest } from '../../src/guest/rdma/device.js';
import { GuestError, GuestErrorCode } from '../../src/guest/rdma/errors.js';
import { Arena } from '../../src/memory/arena.js';
import { VIRTIO_F_RING_PACKED } from '../../src/virtio/queue.js';

const KiB = 1024;

describe('durable device backends in a worker pool', () => {
  let pool: BackendPool;
  before(() => {
    pool = new BackendPool({ workers: 2 });
  });
  after(async () => {
    await pool.close();
  });

  it('SEND and RDMA WRITE move data between two guests whose devices run in pool workers', async () => {
    const a = await durableGuest(pool, '127.0.35.1');
    const b = await durableGuest(pool, '127.0.35.2');
    await connectPair(a, b);
    const msg = pattern(1, 3000);
    a.device.dm.guest.write(gpa(DATA), msg);
    b.qps[0].postRecv([{ wrId: 77n, sgList: [{ addr: IOVA + 64 * KiB, length: 4096, lkey: b.lkey }] }]);
    a.qps[0].postSend([{ wrId: 1n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [{ addr: IOVA, length: msg.length, lkey: a.lkey }] }]);
    const big = pattern(2, 200 * KiB);
    a.device.dm.guest.write(gpa(DATA + 1024 * KiB), big);
    a.qps[0].postSend([{ wrId: 2n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 2048 * KiB, rkey: b.rkey, sgList: [{ addr: IOVA + 1024 * KiB, length: big.length, lkey: a.lkey }] }]);
    const sent = await waitForCompletions(a.cq, 2);
    assert.deepEqual(sent.map((c) => [c.wrId, c.status]), [[1n, CqeStatus.Success], [2n, CqeStatus.Success]]);
    const [r] = await waitForCompletions(b.cq, 1);
    assert.deepEqual([r.wrId, r.status, r.opcode, r.byteLen], [77n, CqeStatus.Success, CqeOpcode.Recv, msg.length]);
    assert.deepEqual(b.device.dm.guest.slice(gpa(DATA + 64 * KiB), msg.length), msg);
    assert.deepEqual(b.device.dm.guest.slice(gpa(DATA + 2048 * KiB), big.length), big);
    assert.notEqual(a.device.threadId, -1);
    const counters = await a.device.counters();
    assert.ok(counters.commits > 0, 'the backend commits its state');
    await Promise.all([a.device.close(), b.device.close()]);
  });

  /**
   * Checked traffic on four QP pairs while the sender's worker is terminated, then the receiver's,
   * each with traffic in flight; every completion once and in order, every byte checked. Each
   * device then runs on a live worker after at least one restart from its journal.
   */
  async function throughTwoKills(a: DurableGuest, b: DurableGuest): Promise<void> {
    await connectPair(a, b);
    const kills: number[] = [];
    const report = await runCheckedTraffic(a, b, {
      ops: 200, bytes: 4 * KiB, window: 32,
      onProgress: async (done) => {
        if (kills.length === 0 && done > 0.25) kills.push(await pool.terminateWorkerOf(a.device));
        else if (kills.length === 1 && done > 0.6) kills.push(await pool.terminateWorkerOf(b.device));
      },
    });
    assert.equal(report.sendCompletions, 4 * 200);
    assert.equal(kills.length, 2);
    await Promise.all([a.device.settled(), b.device.settled()]);
    for (const d of [a.device, b.device]) {
      assert.equal(d.lost, null);
      assert.ok(d.restarts >= 1, `${d.ip} was restarted from its journal`);
      assert.ok(!kills.includes(d.threadId) || d.runs.at(-1)?.mode === 'restore', `${d.ip} runs on a live worker`);
    }
  }

  it('a worker killed mid-traffic: each device comes back from its journal and every WRITE and SEND completes once, in order, with its data', async () => {
    const a = await durableGuest(pool, '127.0.35.3', 4);
    const b = await durableGuest(pool, '127.0.35.4', 4);
    await throughTwoKills(a, b);
    await Promise.all([a.device.close(), b.device.close()]);
  });

  it('packed rings: both workers killed mid-traffic, and every WRITE and SEND completes once, in order, with its data', async (t) => {
    // Rings as deep as the traffic's window, so a slot the device used is offered again at once:
    // a restore that wrote a published used descriptor again would wipe out what the driver put
    // there since, and the traffic would stall.
    const shape = { open: { packed: true }, cqEntries: 256, maxSendWr: 32 };
    const a = await durableGuest(pool, '127.0.35.96', 4, {}, shape);
    const b = await durableGuest(pool, '127.0.35.97', 4, {}, shape);
    for (const g of [a, b]) assert.ok(g.guest.has(VIRTIO_F_RING_PACKED), 'the backend offers packed rings and the guest took them');
    await throughTwoKills(a, b);
    for (const d of [a.device, b.device]) {
      const used = d.runs.filter((r) => r.mode === 'restore').map((r) => r.restoredUsed);
      for (const u of used) assert.ok(u.published <= u.entries);
      t.diagnostic(`${d.ip}: used entries at each restore (found published / held): ${used.map((u) => `${u.published}/${u.entries}`).join(', ')}`);
    }
    await Promise.all([a.device.close(), b.device.close()]);
  });
});

describe('a backend pool is bounded', () => {
  it('refuses a device past workers × devicesPerWorker at once, and takes one again once a device closed', async () => {
    await withPool({ workers: 1, devicesPerWorker: 1 }, async (pool) => {
      const first = await pool.open({ ip: '127.0.35.10' });
      await assert.rejects(pool.open({ ip: '127.0.35.11' }), (err: Error) => err instanceof BackendError && err.code === BackendErrorCode.Full);
      await first.close();
      const second = await pool.open({ ip: '127.0.35.11' });
      assert.notEqual(second.threadId, -1);
      await second.close();
    });
  });
});

describe('durable backends with 1, 2 and 4 workers', () => {
  for (const [i, workers] of [1, 2, 4].entries()) {
    it(`${workers} worker${workers > 1 ? 's' : ''}: checked traffic through the death of the sender's worker`, async () => {
      await withPool({ workers }, async (pool) => {
        const a = await durableGuest(pool, `127.0.35.${30 + 2 * i}`, 4);
        const b = await durableGuest(pool, `127.0.35.${31 + 2 * i}`, 4);
        await connectPair(a, b);
        let killed = -1;
        const report = await runCheckedTraffic(a, b, {
          ops: 100, bytes: 2048, window: 16,
          onProgress: async (done) => {
            if (killed < 0 && done > 0.4) killed = await pool.terminateWorkerOf(a.device);
          },
        });
        assert.equal(report.sendCompletions, 400);
        await a.device.settled();
        assert.ok(killed >= 0 && a.device.threadId !== killed && a.device.restarts >= 1);
        await Promise.all([a.device.close(), b.device.close()]);
      });
    });
  }
});

describe('hostile configuration calls to a durable backend', () => {
  it('answers each with an error and keeps serving: a guest then opens the device and moves data', async () => {
    await withPool({ workers: 1 }, async (pool) => {
      const d = await pool.open({ ip: '127.0.35.40' });
      const client = new CallClient(d.control, 5000);
      const refused: [string, unknown[], RegExp][] = [
        ['noSuchCall', [], /BAD_CALL: no call "noSuchCall"/],
        ['writeStatus', ['4'], /BAD_CALL: expected a number/],
        ['setDriverFeatures', [5], /features are a bigint/],
        ['readConfig', [0, 1e9], /outside the .*config space/],
        ['configureQueue', [-1, { size: 16, descGpa: 0, driverGpa: 0, deviceGpa: 0 }], /no virtqueue -1/],
        ['configureQueue', [0, null], /a queue configuration is an object/],
        ['enableQueue', [1e12], /no virtqueue/],
        ['maxQueueSize', [Number.NaN], /expected a number/],
      ];
      for (const [method, args, message] of refused) assert.throws(() => client.call(method, args), message, method);
      const a = await durableGuest(pool, '127.0.35.41');
      const b = await durableGuest(pool, '127.0.35.42');
      await connectPair(a, b);
      const report = await runCheckedTraffic(a, b, { ops: 20, bytes: 1024, window: 8 });
      assert.equal(report.sendCompletions, 20);
      assert.equal(d.lost, null);
      await Promise.all([d.close(), a.device.close(), b.device.close()]);
    });
  });
});

describe('the pool\'s thread holding the sockets (socket: main)', () => {
  it('packets move through shared-memory rings; both workers die mid-traffic and the addresses stay bound throughout', async () => {
    await withPool({ workers: 2 }, async (pool) => {
      const a = await durableGuest(pool, '127.0.35.50', 4, { socket: 'main' });
      const b = await durableGuest(pool, '127.0.35.51', 4, { socket: 'main' });
      await connectPair(a, b);
      const kills: number[] = [];
      const report = await runCheckedTraffic(a, b, {
        ops: 150, bytes: 2048, window: 16,
        onProgress: async (done) => {
          if (kills.length === 0 && done > 0.3) kills.push(await pool.terminateWorkerOf(a.device));
          else if (kills.length === 1 && done > 0.6) {
            await a.device.settled();
            kills.push(await pool.terminateWorkerOf(b.device));
          }
        },
      });
      assert.equal(report.sendCompletions, 600);
      await Promise.all([a.device.settled(), b.device.settled()]);
      for (const d of [a.device, b.device]) {
        assert.ok(d.restarts >= 1);
        assert.ok(d.runs.every((r) => r.timings.bindAttempts === 0), 'no backend bound the address: this thread held it');
        assert.ok(d.socketSide !== null);
      }
      await Promise.all([a.device.close(), b.device.close()]);
      // Closed devices give their addresses back.
      const again = await pool.open({ ip: '127.0.35.50', socket: 'main' });
      await again.close();
    });
  });
});

describe('a durable device whose state outgrows its journal', () => {
  it('is given up once, not restarted into the same failure: the driver sees NEEDS_RESET', async () => {
    await withPool({ workers: 1 }, async (pool) => {
      // An 8 KiB slot holds an empty device, not one with a 2048-page MR (16 KiB of page list).
      const d = await pool.open({ ip: '127.0.35.43', slotBytes: 8192 });
      const guest = RdmaGuest.open(d.transport, d.dm.guest, new Arena(0x10000, DATA - 0x10000), { timeoutMs: 20_000 });
      const pd = await guest.createPd();
      const pages = Array.from({ length: 2048 }, (_, i) => DATA + i * 4096);
      await assert.rejects(guest.regPhysMr(pd, ACCESS, { iova: IOVA, length: 8 << 20, pageShift: 12, pages }), (err: Error) => {
        assert.ok(err instanceof GuestError && err.code === GuestErrorCode.NeedsReset, String(err));
        return true;
      });
      assert.ok(d.lost instanceof BackendError && d.lost.code === BackendErrorCode.JournalFull, String(d.lost));
      assert.equal(d.restarts, 0, 'no restart into the same failure');
      assert.ok(d.transport.status.needsReset);
      await d.close();
    });
  });
});

describe('a durable device the guest broke', () => {
  it('NEEDS_RESET is committed before the driver sees it, and holds across a backend restart; the other device serves on', async () => {
    await withPool({ workers: 2 }, async (pool) => {
      const d = await pool.open({ ip: '127.0.35.44' });
      const guest = RdmaGuest.open(d.transport, d.dm.guest, new Arena(0x10000, DATA - 0x10000), { timeoutMs: 2000 });
      await guest.createPd();
      // The driver makes its available index jump past the queue size (§13.2).
      d.dm.guest.writeU16(gpa(guest.controlRing.config.driverGpa + 2), 1000);
      d.transport.kick(0);
      const deadline = Date.now() + 10_000;
      while (!d.transport.status.needsReset) {
        assert.ok(Date.now() < deadline, 'NEEDS_RESET within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await pool.terminateWorkerOf(d);
      await new Promise((resolve) => setImmediate(resolve));
      await d.settled();
      assert.equal(d.restarts, 1);
      assert.ok(d.transport.status.needsReset, 'the restored device still needs reset');
      await assert.rejects(guest.createPd(), (err: Error) => err instanceof GuestError && err.code === GuestErrorCode.NeedsReset);
      const a = await durableGuest(pool, '127.0.35.45');
      const b = await durableGuest(pool, '127.0.35.46');
      await connectPair(a, b);
      assert.equal((await runCheckedTraffic(a, b, { ops: 10, bytes: 512, window: 4 })).sendCompletions, 10);
      await Promise.all([d.close(), a.device.close(), b.device.close()]);
    });
  });

  it("keeps its provider's counters through a backend restart: they are device state, restored from the journal, not counted twice", async () => {
    await withPool({ workers: 2 }, async (pool) => {
      const a = await durableGuest(pool, '127.0.35.47', 2);
      const b = await durableGuest(pool, '127.0.35.48', 2);
      await connectPair(a, b);
      const qpns = a.qps.map((qp) => qp.qpn).sort((x, y) => x - y);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(a.device.suspendAll('rnr-nak'), qpns);
        a.device.resumeAll(qpns);
      }
      const before = await a.device.providerCounters();
      assert.deepEqual([before.events.get('suspend'), before.events.get('resume')], [6, 6]);
      await pool.terminateWorkerOf(a.device);
      await a.device.ready();
      // The new backend took the counters up with the rest of the device (its restore resumes the
      // QPs the journal has running: two more resumes, no more suspends).
      const after = await a.device.providerCounters();
      for (const [event, n] of before.events) assert.ok((after.events.get(event) ?? 0) >= n, `${event}: ${after.events.get(event)} after, ${n} before`);
      assert.equal(after.events.get('suspend'), 6);
      await Promise.all([a.device.close(), b.device.close()]);
    });
  });
});
