// Two VMs in one process, each the whole public path: guest library -> virtio-rdma device ->
// SoftRoce -> loopback link. Data moves from one guest's memory into the other's only through
// virtqueues, WQEs, RoCE v2 packets and CQEs.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { AccessFlag, AttrMask, CqeOpcode, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { RdmaDevice } from '../../src/device/device.js';
import { RdmaGuest, ahAttr } from '../../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import { QpState } from '../../src/nic/qp-state.js';
import { SoftRoce } from '../../src/nic/soft/soft-roce.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { pattern } from './pattern.js';

const MiB = 1024 * 1024;
const RAM = 32 * MiB;
/** Guest-physical layout: rings and driver buffers below DATA, registered data from DATA up. */
const DATA = 16 * MiB;
const DATA_BYTES = 8 * MiB;
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;

interface Vm {
  ip: string;
  dm: DeviceMemory;
  device: RdmaDevice;
  verbs: SoftRoce;
  guest: RdmaGuest;
  pd: number;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
}

const open: SoftRoce[] = [];
afterEach(() => {
  for (const v of open.splice(0)) v.close();
});

async function vm(hub: LoopbackHub, ip: string, packed = false): Promise<Vm> {
  // The RAM window keeps room for a hotplugged region, like a VMM's maxmem.
  const dm = DeviceMemory.create({ ramBytes: RAM + 4 * MiB, arenaBytes: 24 * MiB });
  dm.addRegion(0, RAM);
  const verbs = new SoftRoce(dm, hub.attach(ip));
  open.push(verbs);
  const device = new RdmaDevice({ verbs, dm, vmIp: ip, inline: true });
  const guest = RdmaGuest.open(device.transport, dm.guest, new Arena(0x10000, DATA - 0x10000), { packed });
  const pd = await guest.createPd();
  const cq = await guest.createCq(256);
  const qp = await guest.createQp({
    pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn,
    cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 },
  });
  // The guest registers its data area as a guest userspace would (R1): iova != gpa.
  const pages = Array.from({ length: DATA_BYTES / 4096 }, (_, i) => DATA + i * 4096);
  const mr = await guest.regPhysMr(pd, ALL, { iova: 0x7f00_0000_0000, length: DATA_BYTES, pageShift: 12, pages });
  return { ip, dm, device, verbs, guest, pd, cq, qp, lkey: mr.lkey, rkey: mr.rkey };
}

const IOVA = 0x7f00_0000_0000;

async function connect(a: Vm, b: Vm): Promise<void> {
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    await self.qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS | AttrMask.PKEY_INDEX | AttrMask.PORT, { qpState: QpState.Init, qpAccessFlags: ALL & ~AccessFlag.LOCAL_WRITE, pkeyIndex: 0, portNum: 1 });
    await self.qp.modify(
      AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
      { qpState: QpState.Rtr, ahAttr: ahAttr(peer.ip, 0), pathMtu: 3, destQpNum: peer.qp.qpn, rqPsn: 0xfffff0, maxDestRdAtomic: 16, minRnrTimer: 1 },
    );
    await self.qp.modify(
      AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
      { qpState: QpState.Rts, sqPsn: 0xfffff0, timeout: 10, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 },
    );
  }
}



async function pair(packed = false): Promise<[Vm, Vm]> {
  const hub = new LoopbackHub();
  const a = await vm(hub, '127.0.1.5', packed);
  const b = await vm(hub, '127.0.1.6', packed);
  await connect(a, b);
  return [a, b];
}

describe('guest to guest through the device, SoftRoce and the loopback link', () => {
  for (const packed of [false, true]) {
    it(`SEND/RECV with immediate, multi-packet up to 1 MiB, crossing the PSN wrap (${packed ? 'packed' : 'split'} rings)`, async () => {
      const [a, b] = await pair(packed);
      const sizes = [1, 1000, 4096, 65537, MiB];
      let off = 0;
      const recvOffs: number[] = [];
      for (const [i, size] of sizes.entries()) {
        recvOffs.push(off);
        b.qp.postRecv([{ wrId: BigInt(100 + i), sgList: [{ addr: IOVA + off, length: size, lkey: b.lkey }] }]);
        off += size + 4096;
      }
      let sendOff = 0;
      const sent: Uint8Array[] = [];
      for (const [i, size] of sizes.entries()) {
        const data = pattern(i + 1, size);
        sent.push(data);
        a.dm.guest.write(gpa(DATA + sendOff), data);
        a.qp.postSend([{ wrId: BigInt(i), opcode: SendOpcode.SendWithImm, flags: SendFlag.SIGNALED, imm: 0xc0de0000 + i, sgList: [{ addr: IOVA + sendOff, length: size, lkey: a.lkey }] }]);
        sendOff += size + 4096;
      }
      const sendCqes = await waitForCompletions(a.cq, sizes.length);
      const recvCqes = await waitForCompletions(b.cq, sizes.length);
      assert.deepEqual(sendCqes.map((c) => [c.wrId, c.status, c.opcode]), sizes.map((_, i) => [BigInt(i), CqeStatus.Success, CqeOpcode.Send]));
      assert.deepEqual(recvCqes.map((c) => [c.wrId, c.status, c.byteLen, c.immData]), sizes.map((s, i) => [BigInt(100 + i), CqeStatus.Success, s, 0xc0de0000 + i]));
      for (const [i, size] of sizes.entries()) {
        const got = new Uint8Array(size);
        b.dm.guest.read(gpa(DATA + recvOffs[i]), got);
        assert.deepEqual(got, sent[i], `message ${i}`);
      }
    });
  }

  it('inline SEND carries the bytes posted in the WQE', async () => {
    const [a, b] = await pair();
    b.qp.postRecv([{ wrId: 1n, sgList: [{ addr: IOVA, length: 64, lkey: b.lkey }] }]);
    a.qp.postSend([{ wrId: 2n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, inline: pattern(9, 48) }]);
    await waitForCompletions(a.cq, 1);
    const [c] = await waitForCompletions(b.cq, 1);
    assert.equal(c.byteLen, 48);
    const got = new Uint8Array(48);
    b.dm.guest.read(gpa(DATA), got);
    assert.deepEqual(got, pattern(9, 48));
  });

  it('RDMA WRITE with immediate and RDMA READ move data by rkey, nothing outside the target range', async () => {
    const [a, b] = await pair();
    const data = pattern(3, 200_000);
    a.dm.guest.write(gpa(DATA), data);
    b.dm.guest.fill(gpa(DATA + MiB - 16), 200_032, 0xee);
    b.qp.postRecv([{ wrId: 7n, sgList: [] }]);
    a.qp.postSend([{ wrId: 1n, opcode: SendOpcode.RdmaWriteWithImm, flags: SendFlag.SIGNALED, imm: 0x1234, remoteAddr: IOVA + MiB, rkey: b.rkey, sgList: [{ addr: IOVA, length: data.length, lkey: a.lkey }] }]);
    const [w] = await waitForCompletions(a.cq, 1);
    assert.equal(w.status, CqeStatus.Success);
    const [r] = await waitForCompletions(b.cq, 1);
    assert.deepEqual([r.wrId, r.opcode, r.byteLen, r.immData], [7n, CqeOpcode.RecvRdmaWithImm, data.length, 0x1234]);
    const landed = new Uint8Array(data.length + 32);
    b.dm.guest.read(gpa(DATA + MiB - 16), landed);
    assert.ok(landed.subarray(0, 16).every((x) => x === 0xee) && landed.subarray(16 + data.length).every((x) => x === 0xee), 'canaries around the target');
    assert.deepEqual(landed.subarray(16, 16 + data.length), data);
    // Read it back into another place of a's memory.
    a.qp.postSend([{ wrId: 2n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: IOVA + MiB, rkey: b.rkey, sgList: [{ addr: IOVA + 4 * MiB, length: data.length, lkey: a.lkey }] }]);
    const [rd] = await waitForCompletions(a.cq, 1);
    assert.deepEqual([rd.status, rd.opcode, rd.byteLen], [CqeStatus.Success, CqeOpcode.RdmaRead, data.length]);
    const back = new Uint8Array(data.length);
    a.dm.guest.read(gpa(DATA + 4 * MiB), back);
    assert.deepEqual(back, data);
  });

  it('many fetch-adds and a compare-swap give the right values', async () => {
    const [a, b] = await pair();
    const N = 200;
    b.dm.guest.writeU64(gpa(DATA + 2 * MiB), 1000);
    for (let i = 0; i < N; i++) {
      a.qp.postSend([{ wrId: BigInt(i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 2 * MiB, rkey: b.rkey, compareAdd: 3n, sgList: [{ addr: IOVA + 8 * i, length: 8, lkey: a.lkey }] }]);
      if (i % 48 === 47) await waitForCompletions(a.cq, 48).then((cs) => assert.ok(cs.every((c) => c.status === CqeStatus.Success)));
    }
    await waitForCompletions(a.cq, N % 48);
    assert.equal(b.dm.guest.readU64(gpa(DATA + 2 * MiB)), 1000 + 3 * N);
    const olds = Array.from({ length: N }, (_, i) => a.dm.guest.readU64(gpa(DATA + 8 * i))).sort((x, y) => x - y);
    assert.deepEqual(olds, Array.from({ length: N }, (_, i) => 1000 + 3 * i), 'each fetch-add saw a distinct old value');
    a.qp.postSend([{ wrId: 999n, opcode: SendOpcode.AtomicCmpAndSwp, flags: SendFlag.SIGNALED, remoteAddr: IOVA + 2 * MiB, rkey: b.rkey, compareAdd: BigInt(1000 + 3 * N), swap: 42n, sgList: [{ addr: IOVA + 8 * N, length: 8, lkey: a.lkey }] }]);
    const [cas] = await waitForCompletions(a.cq, 1);
    assert.equal(cas.status, CqeStatus.Success);
    assert.equal(b.dm.guest.readU64(gpa(DATA + 2 * MiB)), 42);
  });

  it('R2: an all-memory MR over hotplugged memory: unplugged ranges swallow writes, a re-plugged region is reachable by the same key', async () => {
    const [a, b] = await pair();
    const HOT = 0x1_0000_0000; // a hotplug region above 4 GiB of guest-physical space
    b.dm.addRegion(HOT, 2 * MiB);
    b.device.memoryChanged();
    const dma = await b.guest.getDmaMr(b.pd, ALL);
    const write = async (wrId: bigint, seed: number): Promise<Uint8Array> => {
      const data = pattern(seed, 8192);
      a.dm.guest.write(gpa(DATA), data);
      a.qp.postSend([{ wrId, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: HOT + 4096, rkey: dma.rkey, sgList: [{ addr: IOVA, length: data.length, lkey: a.lkey }] }]);
      const [c] = await waitForCompletions(a.cq, 1);
      assert.equal(c.status, CqeStatus.Success);
      return data;
    };
    // Present: the write lands in guest memory at that guest-physical address.
    const first = await write(1n, 11);
    const got = new Uint8Array(first.length);
    b.dm.guest.read(gpa(HOT + 4096), got);
    assert.deepEqual(got, first);
    // Unplugged: the same key still works, the write vanishes into the throw-away page, and a
    // READ of the hole gives zeros.
    b.dm.removeRegion(HOT);
    b.device.memoryChanged();
    await write(2n, 12);
    a.qp.postSend([{ wrId: 3n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: HOT + 4096, rkey: dma.rkey, sgList: [{ addr: IOVA + MiB, length: 8192, lkey: a.lkey }] }]);
    const [rd] = await waitForCompletions(a.cq, 1);
    assert.equal(rd.status, CqeStatus.Success);
    const hole = new Uint8Array(8192);
    a.dm.guest.read(gpa(DATA + MiB), hole);
    assert.ok(hole.every((x) => x === 0), 'a read of unplugged memory gives zeros');
    // Plugged back: the same rkey reaches the new memory.
    b.dm.addRegion(HOT, 2 * MiB);
    b.device.memoryChanged();
    const third = await write(4n, 13);
    b.dm.guest.read(gpa(HOT + 4096), got);
    assert.deepEqual(got, third);
  });

  it('a WRITE outside the remote MR fails with a remote access error and leaves the peer untouched', async () => {
    const [a, b] = await pair();
    const before = new Uint8Array(4096);
    b.dm.guest.read(gpa(DATA + DATA_BYTES - 4096), before);
    a.qp.postSend([{ wrId: 5n, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: IOVA + DATA_BYTES - 16, rkey: b.rkey, sgList: [{ addr: IOVA, length: 64, lkey: a.lkey }] }]);
    const [c] = await waitForCompletions(a.cq, 1);
    assert.equal(c.status, CqeStatus.RemAccessErr);
    const after = new Uint8Array(4096);
    b.dm.guest.read(gpa(DATA + DATA_BYTES - 4096), after);
    assert.deepEqual(after, before);
    assert.equal((await a.qp.query()).qpState, QpState.Err);
  });
});
