// RdmaDevice saveState/restoreState (R9): the transport, every virtqueue, the device's objects, the
// CQE backlog, chains held in flight and the provider nested, moved onto a fresh device over a
// copy of the guest's RAM; refused states leave the fresh device and its provider untouched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttrMask, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { decodeDeviceState, encodeDeviceState } from '../../src/device/state/codec.js';
import type { DeviceStateData } from '../../src/device/state/types.js';
import { ahAttr } from '../../src/guest/rdma/device.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import { QpState } from '../../src/nic/qp-state.js';
import { decodeSoftRoceState } from '../../src/nic/soft/state/codec.js';
import { StateError, StateErrorCode as C } from '../../src/state/index.js';
import { IOVA, type TestVm, connect, destination, openVm } from './state-fixtures.js';

const A_IP = '127.0.23.21';
const B_IP = '127.0.23.22';
const turn = () => new Promise((r) => setImmediate(r));

/** A with every kind of device object and work at every stage; B its RC peer with no receives. */
async function busyPair(packed = false): Promise<{ hub: LoopbackHub; a: TestVm; b: TestVm; udQpn: number }> {
  const hub = new LoopbackHub();
  const a = await openVm(hub, A_IP, packed);
  const b = await openVm(hub, B_IP, packed);
  await connect(a, b);
  const g = a.guest;
  const pd2 = await g.createPd();
  await g.getDmaMr(pd2, 1);
  const ah = await g.createAh(a.pd, ahAttr(B_IP, 0));
  const srq = await g.createSrq(a.pd, 16, 2, 0);
  srq.postRecv([{ wrId: 900n, sgList: [{ addr: IOVA + 65536, length: 256, lkey: a.lkey }] }]);
  // A CQ with one buffer: the UD sends' second and third CQEs wait in its backlog.
  const cq2 = await g.createCq(8, { buffers: 1 });
  const ud = await g.createQp({ pd: a.pd, type: QpTypeCode.UD, sendCq: cq2.cqn, recvCq: cq2.cqn, cap: { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 0 } });
  await ud.modify(AttrMask.STATE | AttrMask.QKEY, { qpState: QpState.Init, qkey: 0x1111 });
  await ud.modify(AttrMask.STATE, { qpState: QpState.Rtr });
  await ud.modify(AttrMask.STATE | AttrMask.SQ_PSN, { qpState: QpState.Rts, sqPsn: 5 });
  ud.postSend([1, 2, 3].map((i) => ({ wrId: BigInt(600 + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, ah, remoteQpn: 0x55, remoteQkey: 0x1111, sgList: [{ addr: IOVA, length: 100, lkey: a.lkey }] })));
  // A WRITE that completes (its CQE stays unpolled), then SENDs B cannot take (RNR NAK loop), and
  // receives nobody sends to.
  a.qp.postRecv([1, 2].map((i) => ({ wrId: BigInt(500 + i), sgList: [{ addr: IOVA + 4096 * i, length: 4096, lkey: a.lkey }] })));
  a.qp.postSend([{ wrId: 1n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA, rkey: b.rkey, sgList: [{ addr: IOVA, length: 3000, lkey: a.lkey }] }]);
  for (let i = 0; i < 1000 && a.device.core.cqs[a.cq.cqn]!.cqesWritten === 0; i++) await turn();
  a.qp.postSend([2, 3, 4].map((i) => ({ wrId: BigInt(i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [{ addr: IOVA + 100 * i, length: 1500, lkey: a.lkey }] })));
  for (let i = 0; i < 20; i++) await turn();
  return { hub, a, b, udQpn: ud.qpn };
}

/** Move A: close its provider and link, build the destination over a copy of its RAM, restore. */
async function move(hub: LoopbackHub, a: TestVm, saved: Uint8Array) {
  a.verbs.close();
  await a.verbs.link.close();
  const d = destination(hub, A_IP, a.dm);
  d.device.restoreState(saved);
  return d;
}

/** Compare two device states; the nested provider states compare as plain data. */
function plain(s: DeviceStateData) {
  const p = decodeSoftRoceState(s.provider);
  return { ...s, provider: { ...p, counters: null, qps: p.qps.map((q) => ({ ...q, state: null, suspension: null, attrs: { ...q.attrs, qpState: null, curQpState: null } })) } };
}

describe('device state', () => {
  for (const packed of [false, true]) {
    it(`moves the whole device, chains in flight and CQE backlog included (${packed ? 'packed' : 'split'} rings)`, async () => {
      const { hub, a, b, udQpn } = await busyPair(packed);
      const saved = a.device.saveState();
      const s = decodeDeviceState(saved);
      const qp = s.qps.find((q) => q.qpn === a.qp.qpn)!;
      assert.deepEqual(qp.sq.entries.map((e) => [e.wrId, e.cqe === null]), [[2n, true], [3n, true], [4n, true]]);
      assert.deepEqual(qp.rq.entries.map((e) => e.wrId), [501n, 502n]);
      assert.equal(s.cqs.find((c) => c.depth === 8)!.backlog.length, 2);
      assert.ok(s.qps.some((q) => q.qpn === udQpn));
      assert.equal(s.srqs[0].wq.entries.length, 1);
      assert.equal(s.queues.find((q) => q.vq === 0)!.state?.format, packed ? 'packed' : 'split');

      const d = await move(hub, a, saved);
      const again = decodeDeviceState(d.device.saveState());
      assert.deepEqual(plain(again), plain(s));
      // The provider's QPs that were sending wait SUSPENDED; the guest still sees RTS.
      assert.equal(d.verbs.queryQp(a.qp.qpn).qpState, QpState.Suspended);
      assert.equal(d.device.qpState(a.qp.qpn), QpState.Rts);
      const held = [...s.qps.flatMap((q) => [q.sq, q.rq]), ...s.srqs.map((x) => x.wq)].flatMap((wq) => wq.entries).filter((e) => e.cqe === null);
      assert.deepEqual([...d.device.core.inFlight.keys()].sort(), held.map((e) => e.seq).sort());
      d.verbs.close();
      b.verbs.close();
    });
  }

  it('refuses damaged, foreign and misfitting states, leaving the fresh device and provider untouched', async () => {
    const { hub, a, b } = await busyPair();
    const saved = a.device.saveState();
    a.verbs.close();
    await a.verbs.link.close();
    const d = destination(hub, A_IP, a.dm);
    const fresh = d.device.saveState();
    const refuse = (buf: Uint8Array, code: C) => {
      assert.throws(() => d.device.restoreState(buf), (e) => (e instanceof StateError && e.code === code ? true : assert.fail(`wanted ${code}, got ${String(e)}`)));
      assert.deepEqual(d.device.saveState(), fresh);
    };
    const flipped = saved.slice();
    flipped[saved.length - 100] ^= 4;
    refuse(flipped, C.BadChecksum);
    for (const n of [0, 7, 31, 32, saved.length >> 1, saved.length - 1]) refuse(saved.subarray(0, n), C.Truncated);
    refuse(decodeDeviceState(saved).provider, C.BadKind);
    const versioned = saved.slice();
    new DataView(versioned.buffer).setUint16(8, 2, true);
    refuse(versioned, C.BadVersion);
    const mutate = (f: (s: DeviceStateData) => void): Uint8Array => {
      const s = decodeDeviceState(saved);
      f(s);
      return encodeDeviceState(s);
    };
    refuse(mutate((s) => (s.qps[1].index = s.qps[0].index)), C.Inconsistent);
    refuse(mutate((s) => (s.qps[0].sendCq = 7)), C.Inconsistent);
    refuse(mutate((s) => (s.cqs[0].verbsCq = 999)), C.Inconsistent);
    refuse(mutate((s) => (s.mrs[0] = { ...s.mrs[0], lkey: s.mrs[0].lkey ^ 0x100 })), C.Inconsistent);
    refuse(mutate((s) => (s.qps[0].sq.entries[0].chain.readable[0].gpa = 0x7000_0000)), C.Incompatible);
    refuse(mutate((s) => (s.qps[0].sq.entries[0].seq = s.allocators.seq)), C.Inconsistent);
    refuse(mutate((s) => (s.config[0] ^= 1)), C.Incompatible);
    refuse(mutate((s) => (s.driverFeatures |= 1n << 60n)), C.Inconsistent);
    refuse(mutate((s) => (s.queues[0].config.size = 3)), C.Inconsistent);
    refuse(mutate((s) => (s.gids[0].ip = '10.1.1.1')), C.Inconsistent);
    // The nested provider state is checked before anything is built too.
    refuse(mutate((s) => (s.provider = s.provider.slice(0, 100))), C.Truncated);
    // Unknown records are skipped: a newer writer's addition does not stop this reader.
    const extra = mutate(() => {});
    const withUnknown = new Uint8Array(extra.length + 12);
    withUnknown.set(extra);
    const v = new DataView(withUnknown.buffer);
    v.setUint16(extra.length, 0x02ff, true);
    v.setUint32(extra.length + 4, 4, true);
    v.setUint32(20, withUnknown.length, true);
    v.setUint32(24, v.getUint32(24, true) + 1, true);
    const { stateChecksum } = await import('../../src/state/index.js');
    v.setUint32(28, stateChecksum(withUnknown), true);
    d.device.restoreState(withUnknown);
    assert.equal(d.device.qpState(a.qp.qpn), QpState.Rts);
    // A device that holds state takes no other.
    assert.throws(() => d.device.restoreState(saved), (e) => e instanceof StateError && e.code === C.NotEmpty);
    d.verbs.close();
    b.verbs.close();
  });
});
