// SoftRoce saveState/restoreState (R9): every object kind survives a move to a new DeviceMemory
// with a copy of the guest's RAM; allocations after it continue exactly where the source's
// would have; a refused state leaves the provider empty and still able to take a good one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gpa } from '../../../src/memory/index.js';
import { LoopbackHub } from '../../../src/net/loopback.js';
import { QpState, QpType } from '../../../src/nic/qp-state.js';
import { decodeSoftRoceState } from '../../../src/nic/soft/state/codec.js';
import type { SoftRoceState } from '../../../src/nic/soft/state/types.js';
import { Access, SendFlags, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import { StateError, StateErrorCode } from '../../../src/state/index.js';
import { BUF_BYTES, BUF_GPA, BUF_IOVA, RAM_GPA, pattern } from './fixtures.js';
import { bare, copyRam, rich, toRts } from './state-fixtures.js';

const A_IP = '127.0.23.1';
const B_IP = '127.0.23.2';
const code = (c: StateErrorCode) => (e: unknown) => e instanceof StateError && e.code === c;

/** A peer with an RC QP and an MR; the rich provider's RC QP connects to it. */
async function scene() {
  const hub = new LoopbackHub();
  const peer = bare(hub, B_IP);
  const pd = peer.dev.allocPd();
  const cq = peer.dev.createCq(256);
  const pages = Array.from({ length: BUF_BYTES / 4096 }, (_, i) => gpa(BUF_GPA + i * 4096));
  const mr = peer.dev.registerPhysical(pd, { iova: BUF_IOVA, length: BUF_BYTES, access: Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC, pageShift: 12, pages });
  const cap = { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 4, maxRecvSge: 4, maxInlineBytes: 0 };
  const pqp = peer.dev.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: true });
  const a = rich(hub, A_IP, { ip: B_IP, qpn: pqp, rkey: mr.rkey });
  // Completions are delivered on a later turn, so this handler sees the first one.
  const firstCompletion = new Promise<void>((resolve) => a.dev.onCompletion(() => resolve()));
  toRts(peer.dev, pqp, A_IP, a.rc, 0x100, 0xfffff0);
  // The peer reads from and adds to the rich side: its responder keeps both for duplicates.
  peer.dev.postSend(pqp, [
    { wrId: 50n, opcode: WrOpcode.RdmaRead, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA, length: 2048, lkey: mr.lkey }], remoteAddr: BUF_IOVA + 123, rkey: a.mr.rkey },
    { wrId: 51n, opcode: WrOpcode.AtomicFetchAndAdd, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA + 4096, length: 8, lkey: mr.lkey }], remoteAddr: BUF_IOVA + 128, rkey: a.mr.rkey, compareAdd: 3n },
  ]);
  await firstCompletion;
  const peerWcs: number[] = [];
  for (let i = 0; i < 2000 && peerWcs.length < 2; i++) {
    for (const wc of peer.dev.pollCq(cq, 4)) peerWcs.push(wc.status);
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(peerWcs, [WcStatus.Success, WcStatus.Success]);
  return { hub, peer, a };
}

/** The state a restored provider should save: QPs that were sending are SUSPENDED. */
function expectedAfterRestore(s: SoftRoceState): SoftRoceState {
  return {
    ...s,
    qps: s.qps.map((q) => (q.state === QpState.Rts || q.state === QpState.Sqd || q.state === QpState.Sqe
      ? { ...q, state: QpState.Suspended, suspension: { resumeState: q.state, drop: false, ackPsn: -1 }, attrs: { ...q.attrs, qpState: QpState.Suspended, curQpState: QpState.Suspended } }
      : q)),
  };
}

describe('SoftRoce state', () => {
  it('moves every object kind, work in flight included, to a new memory', async () => {
    const { hub, peer, a } = await scene();
    const saved = a.dev.saveState();
    const s = decodeSoftRoceState(saved);
    // What the source holds at this moment, as the records carry it.
    const qp = s.qps.find((q) => q.qpn === 0x4242)!;
    assert.equal(qp.state, QpState.Rts);
    assert.ok(qp.sq.length >= 4, `unacknowledged WQEs: ${qp.sq.length}`);
    assert.equal(qp.sq[0].wrId, 2n);
    assert.deepEqual([...(qp.sq[0].inline ?? [])], [1, 2, 3, 4, 5]);
    assert.equal(qp.rq.length, 1);
    assert.deepEqual(qp.resp.resources.map((r) => r.atomic), [false, true]);
    assert.equal(qp.resp.resources[1].orig, BigInt(new DataView(pattern(8192, 7).buffer).getBigUint64(128, true)));
    assert.deepEqual(s.cqs.find((c) => c.handle === a.cq)!.entries.map((wc) => wc.wrId), [1n]);
    assert.deepEqual(s.cqs.find((c) => c.handle === a.cq2)!.armed, 'solicited');
    assert.deepEqual(s.srqs[0].wqes.map((w) => w.wrId), [101n, 102n, 103n]);
    assert.deepEqual(s.gids, [{ index: 0, ip: A_IP }, { index: 2, ip: '10.9.8.7' }]);
    assert.deepEqual(s.mrs.map((m) => m.table.kind), ['physical', 'all-memory']);

    // The source stops; the destination has a copy of its RAM at the same address.
    const dm = copyRam(a.dm);
    a.dev.close();
    await a.dev.link.close();
    const b = bare(hub, A_IP, dm);
    b.dev.restoreState(saved);
    assert.deepEqual(decodeSoftRoceState(b.dev.saveState()), expectedAfterRestore(s));
    assert.equal(b.dev.queryQp(0x4242).qpState, QpState.Suspended);
    // Unpolled completions come out as they went in.
    const wcs = b.dev.pollCq(a.cq, 10);
    assert.deepEqual(wcs.map((wc) => [wc.wrId, wc.status, wc.qpNum]), [[1n, WcStatus.Success, 0x4242]]);
    peer.dev.close();
    b.dev.close();
  });

  it('continues every allocator where the source would have', async () => {
    const hub = new LoopbackHub();
    const a = rich(hub, A_IP, { ip: B_IP, qpn: 0x99, rkey: 0x1234 });
    const saved = a.dev.saveState();
    const b = bare(new LoopbackHub(), A_IP, copyRam(a.dm));
    b.dev.restoreState(saved);
    const next = (dev: typeof a.dev) => {
      const pd = dev.allocPd();
      const cq = dev.createCq(4);
      const qpn = dev.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 }, sigAll: true });
      const srq = dev.createSrq(pd, 4, 1, 0);
      const ah = dev.createAh(pd, { dgid: B_IP, sgidIndex: 0, hopLimit: 1, trafficClass: 0, flowLabel: 0, sl: 0 });
      const keys = [1, 2].map(() => dev.registerPhysical(pd, { iova: 0, length: 4096, access: Access.LOCAL_WRITE, pageShift: 12, pages: [gpa(RAM_GPA)] }).lkey);
      return { pd, cq, qpn, srq, ah, keys };
    };
    const want = next(a.dev);
    const got = next(b.dev);
    assert.deepEqual(got, want);
    // The key index freed before the save came back with its next tag, not a used one.
    const restoredKeys = [a.mr.lkey, a.all.lkey];
    for (const k of got.keys) assert.ok(!restoredKeys.includes(k));
    a.dev.close();
    b.dev.close();
  });

  it('refuses a restore into a provider that holds objects, or on another address', () => {
    const hub = new LoopbackHub();
    const a = rich(hub, A_IP, { ip: B_IP, qpn: 0x99, rkey: 0x1234 });
    const saved = a.dev.saveState();
    const busy = bare(new LoopbackHub(), A_IP, copyRam(a.dm));
    busy.dev.allocPd();
    assert.throws(() => busy.dev.restoreState(saved), code(StateErrorCode.NotEmpty));
    const elsewhere = bare(new LoopbackHub(), '127.0.23.9', copyRam(a.dm));
    assert.throws(() => elsewhere.dev.restoreState(saved), code(StateErrorCode.Incompatible));
    a.dev.close();
  });

  it('refuses MR pages that are not guest RAM on the destination, and keeps nothing', () => {
    const hub = new LoopbackHub();
    const a = rich(hub, A_IP, { ip: B_IP, qpn: 0x99, rkey: 0x1234 });
    const saved = a.dev.saveState();
    const small = bare(new LoopbackHub(), A_IP, (() => {
      const dm = copyRam(a.dm);
      dm.removeRegion(RAM_GPA);
      dm.addRegion(RAM_GPA, 64 * 1024);
      return dm;
    })());
    const empty = small.dev.saveState();
    assert.throws(() => small.dev.restoreState(saved), code(StateErrorCode.Incompatible));
    assert.deepEqual(small.dev.saveState(), empty);
    a.dev.close();
  });
});
