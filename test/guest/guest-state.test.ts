// The simulated guest driver's state (what a real guest keeps in RAM and vCPU registers): saved
// mid-traffic, restored as a new driver over the same device and RAM, it carries on where the old
// one stopped — same objects by handle, same wr_ids, every WR completed once; and a damaged
// state is refused with BAD_STATE, never another error.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { AccessFlag, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { RdmaGuest, type RdmaGuestState } from '../../src/guest/rdma/device.js';
import { GuestError, GuestErrorCode } from '../../src/guest/rdma/errors.js';
import { decodeGuestState, encodeGuestState } from '../../src/guest/rdma/state-codec.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { connectRc } from '../../src/host/connect.js';
import { Vm } from '../../src/host/vm.js';
import { Arena } from '../../src/memory/arena.js';
import { MemoryError, MemoryErrorCode } from '../../src/memory/errors.js';
import { LoopbackHub } from '../../src/net/loopback.js';

const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const vms: Vm[] = [];
after(async () => {
  for (const v of vms.splice(0)) await v.close();
});

async function pair(packed: boolean) {
  const hub = new LoopbackHub();
  const open = async (ip: string) => {
    const vm = await Vm.open({ ip, ramBytes: 16 * 1024 * 1024, link: hub.attach(ip), open: { packed } });
    vms.push(vm);
    const pd = await vm.guest.createPd();
    const cq = await vm.guest.createCq(256);
    const qp = await vm.guest.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 64 } });
    const mr = await vm.guest.getDmaMr(pd, ALL);
    return { vm, pd, cq, qp, mr };
  };
  const a = await open('127.0.24.101');
  const b = await open('127.0.24.102');
  await connectRc(a.qp, 100, { qpn: b.qp.qpn, ip: b.vm.ip, psn: 200 });
  await connectRc(b.qp, 200, { qpn: a.qp.qpn, ip: a.vm.ip, psn: 100 });
  return { a, b };
}

function roundTrip(g: RdmaGuest): unknown {
  return decodeGuestState(encodeGuestState(g.saveState()));
}

describe('guest driver state', () => {
  for (const packed of [false, true]) {
    it(`a restored driver carries on mid-traffic (${packed ? 'packed' : 'split'} rings)`, async () => {
      const { a, b } = await pair(packed);
      const buf = a.vm.allocBuffer(64 * 1024);
      const dst = b.vm.allocBuffer(64 * 1024);
      for (let i = 0; i < 16; i++) b.qp.postRecv([{ wrId: BigInt(1000 + i), sgList: [{ addr: dst + i * 4096, length: 4096, lkey: b.mr.lkey }] }]);
      for (let i = 0; i < 8; i++) {
        a.vm.bytes(buf + i * 4096, 4096).fill(i + 1);
        a.qp.postSend([{ wrId: BigInt(i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [{ addr: buf + i * 4096, length: 4096, lkey: a.mr.lkey }] }]);
      }
      // Take some completions, leave the rest in the CQ ring for the restored driver.
      const early = a.cq.poll(3);
      const state = roundTrip(a.vm.guest) as RdmaGuestState;
      assert.equal(state.qps.length, 1);
      const restored = RdmaGuest.restore(a.vm.device.transport, a.vm.dm.guest, state);
      assert.deepEqual(roundTrip(restored), state, 'save(restore(s)) = s');
      const cq = restored.cqs.get(a.cq.cqn);
      const qp = restored.qps.get(a.qp.qpn);
      assert.ok(cq !== undefined && qp !== undefined);
      for (let i = 8; i < 16; i++) {
        a.vm.bytes(buf + i * 4096, 4096).fill(i + 1);
        qp.postSend([{ wrId: BigInt(i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [{ addr: buf + i * 4096, length: 4096, lkey: a.mr.lkey }] }]);
      }
      const rest = await waitForCompletions(cq, 16 - early.length);
      const ids = [...early, ...rest].map((c) => Number(c.wrId)).sort((x, y) => x - y);
      assert.deepEqual(ids, Array.from({ length: 16 }, (_, i) => i), 'every send completed exactly once');
      assert.ok([...early, ...rest].every((c) => c.status === CqeStatus.Success));
      const recvs = await waitForCompletions(b.cq, 16);
      assert.deepEqual(recvs.map((c) => Number(c.wrId)), Array.from({ length: 16 }, (_, i) => 1000 + i));
      for (let i = 0; i < 16; i++) assert.ok(b.vm.bytes(dst + i * 4096, 4096).every((x) => x === i + 1), `buffer ${i}`);
      // The restored driver's queues reclaim what the device returned: a full ring again.
      assert.equal(qp.sq.outstanding, 16, 'WQEs posted before and after the save are tracked');
      qp.sq.reclaim();
      assert.equal(qp.sq.outstanding, 0);
      // A control command still works through the restored control ring.
      assert.equal((await restored.queryQp(qp.qpn)).destQpNum, b.qp.qpn);
    });
  }

  it('refuses a command in flight, and states that are not ours', async () => {
    const { a } = await pair(false);
    const pending = a.vm.guest.createPd();
    assert.throws(() => a.vm.guest.saveState(), (e: unknown) => e instanceof GuestError && e.code === GuestErrorCode.Busy);
    await pending;
    const state = roundTrip(a.vm.guest) as Record<string, unknown>;
    const t = a.vm.device.transport;
    const g = a.vm.dm.guest;
    const bad = (s: unknown) => assert.throws(() => RdmaGuest.restore(t, g, s), (e: unknown) => e instanceof GuestError && e.code === GuestErrorCode.BadState);
    bad(null);
    bad({ ...state, kind: 'something-else' });
    bad({ ...state, version: 2 });
    bad({ ...state, features: (2n ** 63n).toString() });
    bad({ ...state, qps: [...(state.qps as unknown[]), ...(state.qps as unknown[])] });
    assert.throws(() => decodeGuestState(new Uint8Array([0xff, 0x7b])), (e: unknown) => e instanceof GuestError && e.code === GuestErrorCode.BadState);
  });

  it('any damage to a saved state is refused as BAD_STATE or restores consistently', async () => {
    const { a } = await pair(true);
    a.qp.postRecv([{ wrId: 7n, sgList: [{ addr: a.vm.allocBuffer(4096), length: 4096, lkey: a.mr.lkey }] }]);
    const state = roundTrip(a.vm.guest);
    const json = JSON.stringify(state);
    const numbers = [...json.matchAll(/-?\d+/g)];
    fc.assert(
      fc.property(fc.nat(numbers.length - 1), fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constant(2 ** 53)), (which, value) => {
        const m = numbers[which];
        const damaged = JSON.parse(json.slice(0, m.index) + String(value) + json.slice((m.index ?? 0) + m[0].length)) as unknown;
        try {
          const g = RdmaGuest.restore(a.vm.device.transport, a.vm.dm.guest, damaged);
          // Accepted: it must save back to exactly what it was given.
          assert.deepEqual(roundTrip(g), damaged);
        } catch (err) {
          if (!(err instanceof GuestError) || err.code !== GuestErrorCode.BadState) throw err;
        }
      }),
      { numRuns: 300, seed: 20260524 },
    );
  });
});

describe('arena state', () => {
  it('round-trips and keeps allocating where it left off', () => {
    const a = new Arena(4096, 1 << 20, 'test');
    const blocks = [a.alloc(100), a.alloc(5000, 4096), a.alloc(64)];
    a.release(blocks[1]);
    const b = Arena.fromState(JSON.parse(JSON.stringify(a.saveState())));
    assert.deepEqual(b.saveState(), a.saveState());
    assert.equal(b.alloc(5000, 4096), a.alloc(5000, 4096));
    assert.equal(b.usedBytes(), a.usedBytes());
  });

  it('refuses overlapping or out-of-range blocks', () => {
    const s = new Arena(0, 65536).saveState();
    const bad = (x: unknown) => assert.throws(() => Arena.fromState(x), (e: unknown) => e instanceof MemoryError && e.code === MemoryErrorCode.BadState);
    bad({ ...s, used: [[0, 100]], free: [[50, 100]] });
    bad({ ...s, free: [[65530, 100]] });
    bad({ ...s, used: [[0, 0]] });
    bad({ ...s, free: 'x' });
  });
});
