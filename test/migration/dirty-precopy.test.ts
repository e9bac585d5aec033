// The proof that pre-copy migration will be correct: two VMs run RDMA traffic to each other over
// the in-process loopback hub (SEND/RECV with immediate, RDMA WRITE with immediate, RDMA READ,
// fetch-add, both directions) with both dirty logs of each VM on, and rounds of harvesting run
// between and during the operations. A shadow of each VM's RAM, taken when the logs started and
// updated only from harvested pages, equals RAM byte for byte at the end: every write the device,
// its provider and the simulated guest made was logged. Split and packed rings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, AttrMask, CqeOpcode, CqeStatus, EventType, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { connectRc } from '../../src/host/connect.js';
import { Vm } from '../../src/host/vm.js';
import { gpa } from '../../src/memory/gpa.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import { QpState } from '../../src/nic/qp-state.js';
import { PathMtu } from '../../src/nic/types.js';
import { pattern } from '../e2e/pattern.js';
import { Shadow } from './shadow.js';

const MiB = 1024 * 1024;
const RAM = 8 * MiB;
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const BUF = 2 * MiB;

interface End {
  vm: Vm;
  shadow: Shadow;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
  /** The data buffer's address as the MR names it (iova), and its GPA. */
  iova: number;
  buf: number;
}

/** Open a VM and start its logs and shadow before the guest creates any object. */
async function open(hub: LoopbackHub, ip: string, packed: boolean): Promise<{ vm: Vm; shadow: Shadow }> {
  const vm = await Vm.open({ ip, ramBytes: RAM, driverBytes: 2 * MiB, link: hub.attach(ip), open: { packed } });
  return { vm, shadow: new Shadow(vm, RAM) };
}

/** Objects made with logging on: control responses, ring setup, a page list in guest memory. */
async function end(vm: Vm, shadow: Shadow, physical: boolean): Promise<End> {
  const g = vm.guest;
  const pd = await g.createPd();
  shadow.round();
  // One page per CQE buffer: a CQE whose write escaped the log cannot hide behind a neighbour.
  const cq = await g.createCq(64, { bufferBytes: 4096 });
  const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 64 } });
  const buf = vm.allocBuffer(BUF, 4096);
  if (physical) {
    // R1: iova != gpa, the page list passed indirectly through guest memory.
    const iova = 0x7f00_0000_0000;
    const pages = Array.from({ length: BUF / 4096 }, (_, i) => buf + i * 4096);
    const mr = await g.regPhysMr(pd, ALL, { iova, length: BUF, pageShift: 12, pages, indirect: true });
    return { vm, shadow, cq, qp, lkey: mr.lkey, rkey: mr.rkey, iova, buf };
  }
  const mr = await g.getDmaMr(pd, ALL);
  return { vm, shadow, cq, qp, lkey: mr.lkey, rkey: mr.rkey, iova: buf, buf };
}

/** Poll until `count` completions arrived, running a pre-copy round on both VMs every turn. */
async function pump(cq: GuestCq, count: number, ends: End[]): Promise<Cqe[]> {
  const got: Cqe[] = [];
  for (let turn = 0; got.length < count; turn++) {
    if (turn > 100_000) throw new Error(`${got.length} of ${count} completions`);
    for (const e of ends) e.shadow.round();
    got.push(...cq.poll());
    if (got.length < count) await new Promise((resolve) => setImmediate(resolve));
  }
  for (const c of got) assert.equal(c.status, CqeStatus.Success, `completion ${c.wrId} opcode ${c.opcode}`);
  return got;
}

async function traffic(packed: boolean, ipBase: number): Promise<void> {
  const hub = new LoopbackHub();
  const ipA = `127.0.21.${ipBase}`;
  const ipB = `127.0.21.${ipBase + 1}`;
  const oa = await open(hub, ipA, packed);
  const ob = await open(hub, ipB, packed);
  const a = await end(oa.vm, oa.shadow, true);
  const b = await end(ob.vm, ob.shadow, false);
  const ends = [a, b];
  const attrs = { pathMtu: PathMtu.Mtu1024, access: ALL, maxRdAtomic: 4, maxDestRdAtomic: 4 };
  await connectRc(a.qp, 100, { ip: ipB, qpn: b.qp.qpn, psn: 200 }, attrs);
  await connectRc(b.qp, 200, { ip: ipA, qpn: a.qp.qpn, psn: 100 }, attrs);
  for (const e of ends) e.shadow.round();

  // SEND/RECV with immediate, multi-packet, A -> B; the application fills its buffer through the VM.
  const sizes = [1, 5000, 70_000];
  b.qp.postRecv(sizes.map((s, i) => ({ wrId: BigInt(10 + i), sgList: [{ addr: b.iova + 256 * 1024 * i, length: s, lkey: b.lkey }] })));
  let off = 0;
  for (const [i, s] of sizes.entries()) {
    a.vm.writeBuffer(a.buf + off, pattern(i + 1, s));
    a.qp.postSend([{ wrId: BigInt(i), opcode: SendOpcode.SendWithImm, flags: SendFlag.SIGNALED, imm: i, sgList: [{ addr: a.iova + off, length: s, lkey: a.lkey }] }]);
    off += s;
  }
  await pump(a.cq, sizes.length, ends);
  const recvs = await pump(b.cq, sizes.length, ends);
  assert.deepEqual(recvs.map((c) => c.byteLen), sizes);

  // RDMA WRITE with immediate, B -> A (B writes into A's physical MR by iova).
  const wdata = pattern(7, 300_000);
  b.vm.writeBuffer(b.buf + MiB, wdata);
  a.qp.postRecv([{ wrId: 50n, sgList: [] }]);
  b.qp.postSend([{ wrId: 51n, opcode: SendOpcode.RdmaWriteWithImm, flags: SendFlag.SIGNALED, imm: 0xabc, remoteAddr: a.iova + 1_000_000, rkey: a.rkey, sgList: [{ addr: b.iova + MiB, length: wdata.length, lkey: b.lkey }] }]);
  await pump(b.cq, 1, ends);
  const [imm] = await pump(a.cq, 1, ends);
  assert.deepEqual([imm.opcode, imm.immData], [CqeOpcode.RecvRdmaWithImm, 0xabc]);
  assert.deepEqual(a.vm.bytes(a.buf + 1_000_000, wdata.length), wdata);

  // RDMA READ, A <- B: the response data lands on A's side (requester placement).
  a.qp.postSend([{ wrId: 60n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: b.iova + MiB, rkey: b.rkey, sgList: [{ addr: a.iova + 1_500_000, length: 200_000, lkey: a.lkey }] }]);
  await pump(a.cq, 1, ends);
  assert.deepEqual(a.vm.bytes(a.buf + 1_500_000, 200_000), wdata.subarray(0, 200_000));

  // Fetch-add both ways: the target word changes at the responder, the original value is placed
  // at the requester.
  const word = 1_900_000;
  a.vm.cpuMemory.writeU64(gpa(a.buf + word), 1000);
  b.vm.cpuMemory.writeU64(gpa(b.buf + word), 5);
  for (let i = 0; i < 12; i++) {
    b.qp.postSend([{ wrId: BigInt(70 + i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: a.iova + word, rkey: a.rkey, compareAdd: 3n, sgList: [{ addr: b.iova + 1_950_000 + 8 * i, length: 8, lkey: b.lkey }] }]);
    a.qp.postSend([{ wrId: BigInt(90 + i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: b.iova + word, rkey: b.rkey, compareAdd: 1n, sgList: [{ addr: a.iova + 1_950_000 + 8 * i, length: 8, lkey: a.lkey }] }]);
  }
  await pump(a.cq, 12, ends);
  await pump(b.cq, 12, ends);
  assert.equal(a.vm.dm.guest.readU64(gpa(a.buf + word)), 1036);
  assert.equal(b.vm.dm.guest.readU64(gpa(b.buf + word)), 17);

  // An asynchronous event (§12): SQ drained, written into the event queue.
  await a.qp.modify(AttrMask.STATE | AttrMask.EN_SQD_ASYNC_NOTIFY, { qpState: QpState.Sqd, enSqdAsyncNotify: 1 });
  const events: { type: number; handle: number }[] = [];
  for (let turn = 0; events.length === 0; turn++) {
    if (turn > 100_000) throw new Error('no SQ drained event');
    for (const e of ends) e.shadow.round();
    events.push(...a.vm.guest.pollEvents());
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.deepEqual(events, [{ type: EventType.SqDrained, handle: a.qp.qpn }]);

  // Quiesce (the QPs and timers stop: nothing writes any more), then the last round.
  await Promise.all(ends.map((e) => e.vm.close()));
  for (const e of ends) {
    e.shadow.round();
    assert.ok(e.shadow.rounds > 10 && e.shadow.pagesCopied > 0, 'rounds ran and copied pages');
    assert.equal(e.vm.dirtyLog.overflowed || e.vm.cpuLog.overflowed, false);
    assert.ok(e.vm.dirtyLog.pagesHarvested > 0 && e.vm.cpuLog.pagesHarvested > 0, 'both logs saw writes');
    assert.deepEqual(e.shadow.differing(), [], `${e.vm.ip}: pages written without being logged`);
  }
  // The check can fail: a write that bypasses the logs is caught.
  a.vm.bytes(a.buf + 4096 * 3, 1)[0] ^= 0xff;
  a.shadow.round();
  assert.deepEqual(a.shadow.differing(), [(a.buf + 4096 * 3) / 4096]);
}

describe('pre-copy over the dirty logs: a shadow fed only from harvested pages equals RAM', () => {
  it('split rings: SEND/RECV, WRITE with immediate, READ, fetch-add', async () => {
    await traffic(false, 10);
  });
  it('packed rings: SEND/RECV, WRITE with immediate, READ, fetch-add', async () => {
    await traffic(true, 20);
  });
});
