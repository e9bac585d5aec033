// A VM moves in one process (R9 with R6): two VMs (src/host/vm.ts) on the loopback hub run RC
// traffic; A is left with work at every stage — receives posted, SENDs its peer cannot take yet
// (RNR NAKs, unacknowledged), completions it has not polled — its QP is suspended, its device and
// provider saved, its RAM copied into a new DeviceMemory, and a new provider and device at the
// same address restore the state. Traffic then continues both ways: every work request completes
// exactly once, with the right bytes, and the QPN and memory keys are those of before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, AttrMask, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import { RdmaDevice } from '../../src/device/device.js';
import { RdmaGuest, ahAttr } from '../../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { Vm } from '../../src/host/vm.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import { QpState } from '../../src/nic/qp-state.js';
import { SoftRoce } from '../../src/nic/soft/soft-roce.js';
import { pattern } from './pattern.js';

const MiB = 1024 * 1024;
const A_IP = '127.0.23.41';
const B_IP = '127.0.23.42';
const RAM = 32 * MiB;
const DATA_BYTES = 4 * MiB;
const IOVA = 0x7e00_0000_0000;
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const turn = () => new Promise((r) => setImmediate(r));

interface Side {
  vm: Vm;
  data: number;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
}

async function side(hub: LoopbackHub, ip: string): Promise<Side> {
  const vm = await Vm.open({ ip, ramBytes: RAM, link: hub.attach(ip) });
  const g = vm.guest;
  const data = vm.allocBuffer(DATA_BYTES, 4096);
  const pd = await g.createPd();
  const cq = await g.createCq(128);
  const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 0 } });
  const pages = Array.from({ length: DATA_BYTES / 4096 }, (_, i) => data + i * 4096);
  const mr = await g.regPhysMr(pd, ALL, { iova: IOVA, length: DATA_BYTES, pageShift: 12, pages });
  return { vm, data, cq, qp, lkey: mr.lkey, rkey: mr.rkey };
}

async function connect(a: Side, b: Side): Promise<void> {
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    await self.qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS, { qpState: QpState.Init, qpAccessFlags: ALL & ~AccessFlag.LOCAL_WRITE });
    await self.qp.modify(
      AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
      { qpState: QpState.Rtr, ahAttr: ahAttr(peer.vm.ip, 0), pathMtu: 3, destQpNum: peer.qp.qpn, rqPsn: 0xfffff8, maxDestRdAtomic: 8, minRnrTimer: 1 },
    );
    // retry_cnt 1: a move that cost the guest its retries would end in RETRY_EXC_ERR.
    await self.qp.modify(
      AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
      { qpState: QpState.Rts, sqPsn: 0xfffff8, timeout: 14, retryCnt: 1, rnrRetry: 7, maxRdAtomic: 8 },
    );
  }
}

const sge = (s: Side, off: number, length: number) => [{ addr: IOVA + off, length, lkey: s.lkey }];
const ids = (cqes: Cqe[]) => cqes.map((c) => c.wrId).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

describe('a VM moved with RC traffic in flight', () => {
  it('keeps QPN and keys, and completes every work request exactly once with the right bytes', async () => {
    const hub = new LoopbackHub();
    const a = await side(hub, A_IP);
    const b = await side(hub, B_IP);
    await connect(a, b);
    const write = (s: Side, off: number, bytes: Uint8Array) => s.vm.dm.guest.write(gpa(s.data + off), bytes);

    // Before: A's receives wait for B's SENDs; A sends two messages B takes and a WRITE, whose
    // completions A does not poll; then three SENDs B has no receives for (RNR NAKs).
    a.qp.postRecv([0, 1, 2, 3].map((i) => ({ wrId: BigInt(100 + i), sgList: sge(a, MiB + i * 8192, 8192) })));
    b.qp.postRecv([0, 1].map((i) => ({ wrId: BigInt(200 + i), sgList: sge(b, i * 8192, 8192) })));
    const early = [pattern(1, 5000), pattern(2, 7000)];
    early.forEach((p, i) => write(a, i * 8192, p));
    a.qp.postSend(early.map((p, i) => ({ wrId: BigInt(i + 1), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sge(a, i * 8192, p.length) })));
    const written = pattern(3, 20_000);
    write(a, 64 * 1024, written);
    a.qp.postSend([{ wrId: 3n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 2 * MiB, rkey: b.rkey, sgList: sge(a, 64 * 1024, written.length) }]);
    const late = [pattern(4, 3000), pattern(5, 9000), pattern(6, 100)];
    late.forEach((p, i) => write(a, 128 * 1024 + i * 16384, p));
    a.qp.postSend(late.map((p, i) => ({ wrId: BigInt(10 + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sge(a, 128 * 1024 + i * 16384, p.length) })));
    assert.deepEqual(ids(await waitForCompletions(b.cq, 2)), [200n, 201n]);
    // A's first three completions are in its CQ ring, unpolled; its last three wait on RNR NAKs.
    const aCq = a.vm.device.core.cqs[a.cq.cqn]!;
    for (let i = 0; i < 5000 && aCq.cqesWritten < 3; i++) await turn();
    assert.equal(aCq.cqesWritten, 3);
    for (let i = 0; i < 20; i++) await turn();

    // The move. Source: suspend, save, copy RAM, stop. Destination: restore at the same address.
    const qpn = a.qp.qpn;
    a.vm.verbs.suspendQp(qpn, 'rnr-nak');
    const saved = a.vm.device.saveState();
    const dm = DeviceMemory.create({ ramBytes: RAM, arenaBytes: 4 * MiB });
    dm.addRegion(0, RAM);
    dm.guest.write(gpa(0), a.vm.dm.guest.slice(gpa(0), RAM));
    a.vm.verbs.close();
    await a.vm.releaseAddress();
    const verbs = new SoftRoce(dm, hub.attach(A_IP));
    const device = new RdmaDevice({ verbs, dm, vmIp: A_IP, inline: true });
    device.restoreState(saved);
    // The guest driver moves as the vCPU's state would (RdmaGuest.saveState, as the coordinator does).
    const guest = RdmaGuest.restore(device.transport, dm.guest, a.vm.guest.saveState());
    assert.equal(verbs.queryQp(qpn).qpState, QpState.Suspended);
    verbs.resumeQp(qpn);
    device.process();
    const moved: Side = { ...a, cq: guest.cqs.get(a.cq.cqn)!, qp: guest.qps.get(qpn)!, vm: { ...a.vm, dm, guest } as unknown as Vm };

    // After: B takes A's three SENDs, sends four of its own into A's old receives, WRITEs, READs
    // and adds into A by A's old rkey; A READs from B.
    b.qp.postRecv(late.map((_, i) => ({ wrId: BigInt(210 + i), sgList: sge(b, 512 * 1024 + i * 16384, 16384) })));
    const toA = [pattern(7, 8192), pattern(8, 1), pattern(9, 4000), pattern(10, 6000)];
    toA.forEach((p, i) => write(b, MiB + i * 8192, p));
    b.qp.postSend(toA.map((p, i) => ({ wrId: BigInt(300 + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sge(b, MiB + i * 8192, p.length) })));
    const intoA = pattern(11, 30_000);
    write(b, 3 * MiB, intoA);
    b.qp.postSend([
      { wrId: 310n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 3 * MiB, rkey: a.rkey, sgList: sge(b, 3 * MiB, intoA.length) },
      { wrId: 311n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 128 * 1024, rkey: a.rkey, sgList: sge(b, 3 * MiB + 65536, 9000) },
      { wrId: 312n, opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 3 * MiB + 24_000, rkey: a.rkey, compareAdd: 5n, sgList: sge(b, 3 * MiB + 80_000, 8) },
    ]);
    write(b, 2 * MiB + 512 * 1024, pattern(12, 12_000));
    moved.qp.postSend([{ wrId: 20n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 2 * MiB + 512 * 1024, rkey: b.rkey, sgList: sge(a, 2 * MiB, 12_000) }]);

    const aDone = await waitForCompletions(moved.cq, 3 + 3 + 4 + 1);
    const bDone = await waitForCompletions(b.cq, 3 + 4 + 3);
    for (const c of [...aDone, ...bDone]) assert.equal(c.status, CqeStatus.Success, `wr ${c.wrId}: status ${c.status}`);
    assert.deepEqual(ids(aDone), [1n, 2n, 3n, 10n, 11n, 12n, 20n, 100n, 101n, 102n, 103n]);
    assert.deepEqual(ids(bDone), [210n, 211n, 212n, 300n, 301n, 302n, 303n, 310n, 311n, 312n]);
    for (let i = 0; i < 50; i++) await turn();
    assert.deepEqual([moved.cq.poll().length, b.cq.poll().length], [0, 0], 'no second completion');

    const at = (s: Side, mem: DeviceMemory, off: number, n: number) => mem.guest.slice(gpa(s.data + off), n);
    late.forEach((p, i) => assert.deepEqual(at(b, b.vm.dm, 512 * 1024 + i * 16384, p.length), p, `late SEND ${i}`));
    toA.forEach((p, i) => assert.deepEqual(at(a, dm, MiB + i * 8192, p.length), p, `SEND into A ${i}`));
    assert.deepEqual(aDone.filter((c) => c.wrId >= 100n).map((c) => c.byteLen), toA.map((p) => p.length));
    assert.deepEqual(at(b, b.vm.dm, 2 * MiB, written.length), written);
    const landed = at(a, dm, 3 * MiB, intoA.length).slice();
    landed.set(intoA.subarray(24_000, 24_008), 24_000);
    assert.deepEqual(landed, intoA);
    assert.deepEqual(at(b, b.vm.dm, 3 * MiB + 65536, 9000), at(a, dm, 128 * 1024, 9000));
    assert.deepEqual(at(a, dm, 2 * MiB, 12_000), pattern(12, 12_000));
    const before = new DataView(intoA.slice(24_000, 24_008).buffer).getBigUint64(0, true);
    assert.equal(new DataView(at(a, dm, 3 * MiB + 24_000, 8).slice().buffer).getBigUint64(0, true), (before + 5n) & 0xffff_ffff_ffff_ffffn);
    assert.equal(new DataView(at(b, b.vm.dm, 3 * MiB + 80_000, 8).slice().buffer).getBigUint64(0, true), before);
    // Same QPN, same keys, no QP in error on either side.
    assert.equal(device.qpState(qpn), QpState.Rts);
    assert.equal(verbs.queryQp(qpn).qpState, QpState.Rts);
    assert.equal(b.vm.verbs.queryQp(b.qp.qpn).qpState, QpState.Rts);
    assert.deepEqual([...device.core.mrs.values()].map((m) => [m.lkey, m.rkey]), [[a.lkey, a.rkey]]);
    assert.equal(verbs.counters.internalErrors, 0);
    verbs.close();
    await b.vm.close();
  });
});
