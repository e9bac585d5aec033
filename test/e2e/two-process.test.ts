// Two host processes, each with one VM on a real UDP socket bound to its own loopback address,
// exchange QP information over the fork IPC channel (the out-of-band step an application does)
// and then move data through the whole stack: guest library -> virtio-rdma device -> SoftRoce ->
// UdpLink -> kernel -> the other process, and back. Every byte is checked in the receiving
// guest's memory, and every work request gets exactly one completion.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CqeFlag, CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import type { RecvRequest, SendRequest } from '../../src/guest/rdma/wqe.js';
import { Host, type Info } from './host-process.js';
import { UD_QKEY } from './vm-child.js';

const MiB = 1024 * 1024;
const GRH_BYTES = 40;
const SIGNALED = SendFlag.SIGNALED;

/** Every completion is successful, of `opcode`, and the wrIds are exactly `wrIds` in order. */
function checkCqes(cqes: Cqe[], opcode: CqeOpcode, wrIds: bigint[]): void {
  assert.deepEqual(cqes.map((c) => c.wrId), wrIds);
  for (const c of cqes) {
    assert.equal(c.status, CqeStatus.Success, `wr ${c.wrId}: status ${c.status} vendor_err ${c.vendorErr}`);
    assert.equal(c.opcode, opcode);
  }
}

describe('two host processes over real UDP', { timeout: 60_000 }, () => {
  const a = new Host('127.0.1.21');
  const b = new Host('127.0.1.22');
  // A's first PSN is close to 2^24 so its messages cross the PSN wrap.
  const psnA = 0xffff00;
  const psnB = 0x000100;

  before(async () => {
    await Promise.all([a.started, b.started]);
    [a.info, b.info] = await Promise.all([a.call<Info>('setup', { ip: a.ip }), b.call<Info>('setup', { ip: b.ip })]);
    await Promise.all([
      a.call('connect', { localPsn: psnA, remote: { ip: b.ip, qpn: b.info.rcQpn, psn: psnB } }),
      b.call('connect', { localPsn: psnB, remote: { ip: a.ip, qpn: a.info.rcQpn, psn: psnA } }),
    ]);
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('SEND/RECV: immediate, inline, single- and multi-packet messages up to 1 MiB', async () => {
    const sizes = [1, 1000, 1024, 1025, 4103, 65536, 300_001, MiB];
    const CANARY = 64;
    const dst = await Promise.all(sizes.map((n) => b.alloc(n + CANARY)));
    const src = await Promise.all(sizes.map((n) => a.alloc(n)));
    await Promise.all(sizes.map((n, i) => a.call('fill', { at: src[i], len: n, seed: 1000 + i })));
    const inline = Uint8Array.from({ length: 48 }, (_, i) => (i * 7 + 3) & 0xff);
    const inlineDst = await b.alloc(64 + CANARY);

    const recvs: RecvRequest[] = sizes.map((n, i) => ({ wrId: BigInt(100 + i), sgList: [b.sge(dst[i], n + CANARY)] }));
    recvs.push({ wrId: 199n, sgList: [b.sge(inlineDst, 64 + CANARY)] });
    await b.call('postRecv', { qp: 'rc', wrs: recvs });

    const sends: SendRequest[] = sizes.map((n, i) => ({
      wrId: BigInt(i + 1), opcode: i % 2 === 1 ? SendOpcode.SendWithImm : SendOpcode.Send, flags: SIGNALED,
      sgList: [a.sge(src[i], n)], imm: i % 2 === 1 ? 0xabc00000 + i : undefined,
    }));
    sends.push({ wrId: 99n, opcode: SendOpcode.SendWithImm, flags: SIGNALED, inline, imm: 0x01020304 });
    await a.call('postSend', { qp: 'rc', wrs: sends });

    const [sent, received] = await Promise.all([a.waitCq(sends.length), b.waitCq(recvs.length)]);
    checkCqes(sent, CqeOpcode.Send, sends.map((s) => s.wrId));
    checkCqes(received, CqeOpcode.Recv, recvs.map((r) => r.wrId));
    for (let i = 0; i < sizes.length; i++) {
      const c = received[i];
      assert.equal(c.byteLen, sizes[i]);
      assert.equal((c.wcFlags & CqeFlag.WITH_IMM) !== 0, i % 2 === 1);
      if (i % 2 === 1) assert.equal(c.immData, 0xabc00000 + i);
      assert.equal(c.qpNum, b.info.rcQpn);
      assert.equal(await b.call('verify', { at: dst[i], len: sizes[i], seed: 1000 + i }), -1, `message ${i} (${sizes[i]} bytes)`);
      assert.equal(await b.call('verify', { at: dst[i] + sizes[i], len: CANARY, expect: new Uint8Array(CANARY) }), -1, 'past the message');
    }
    const last = received[sizes.length];
    assert.equal(last.byteLen, inline.length);
    assert.equal(last.immData, 0x01020304);
    assert.equal(await b.call('verify', { at: inlineDst, len: inline.length, expect: inline }), -1);
    assert.equal(await b.call('verify', { at: inlineDst + inline.length, len: CANARY, expect: new Uint8Array(CANARY) }), -1);
  });

  it('RDMA WRITE and WRITE with immediate land in the remote guest, in order', async () => {
    const bigLen = MiB + 3;
    const smallLen = 5000;
    const [bigSrc, smallSrc] = [await a.alloc(bigLen), await a.alloc(smallLen)];
    const [bigDst, smallDst] = [await b.alloc(bigLen + 64), await b.alloc(smallLen + 64)];
    await a.call('fill', { at: bigSrc, len: bigLen, seed: 2001 });
    await a.call('fill', { at: smallSrc, len: smallLen, seed: 2002 });
    await b.call('postRecv', { qp: 'rc', wrs: [{ wrId: 300n, sgList: [] }] });
    const writes: SendRequest[] = [
      { wrId: 31n, opcode: SendOpcode.RdmaWrite, flags: SIGNALED, sgList: [a.sge(smallSrc, smallLen)], remoteAddr: smallDst, rkey: b.info.rkey },
      { wrId: 32n, opcode: SendOpcode.RdmaWriteWithImm, flags: SIGNALED, sgList: [a.sge(bigSrc, bigLen)], remoteAddr: bigDst, rkey: b.info.rkey, imm: 0xfeedf00d },
    ];
    await a.call('postSend', { qp: 'rc', wrs: writes });
    const [done, imm] = await Promise.all([a.waitCq(2), b.waitCq(1)]);
    checkCqes(done, CqeOpcode.RdmaWrite, [31n, 32n]);
    checkCqes(imm, CqeOpcode.RecvRdmaWithImm, [300n]);
    assert.equal(imm[0].byteLen, bigLen);
    assert.equal(imm[0].immData, 0xfeedf00d);
    // The plain WRITE was posted first, so it is in place when the immediate arrives (RC order).
    assert.equal(await b.call('verify', { at: smallDst, len: smallLen, seed: 2002 }), -1);
    assert.equal(await b.call('verify', { at: bigDst, len: bigLen, seed: 2001 }), -1);
    assert.equal(await b.call('verify', { at: bigDst + bigLen, len: 64, expect: new Uint8Array(64) }), -1);
  });

  it('RDMA READ with multi-packet responses', async () => {
    const lens = [8, 1024, 200_003, 700_000];
    const remote = await Promise.all(lens.map((n) => b.alloc(n)));
    await Promise.all(lens.map((n, i) => b.call('fill', { at: remote[i], len: n, seed: 3000 + i })));
    const local = await Promise.all(lens.map((n) => a.alloc(n + 64)));
    const reads: SendRequest[] = lens.map((n, i) => ({
      wrId: BigInt(40 + i), opcode: SendOpcode.RdmaRead, flags: SIGNALED, sgList: [a.sge(local[i], n)], remoteAddr: remote[i], rkey: b.info.rkey,
    }));
    await a.call('postSend', { qp: 'rc', wrs: reads });
    const done = await a.waitCq(reads.length);
    checkCqes(done, CqeOpcode.RdmaRead, reads.map((r) => r.wrId));
    for (let i = 0; i < lens.length; i++) {
      assert.equal(done[i].byteLen, lens[i]);
      assert.equal(await a.call('verify', { at: local[i], len: lens[i], seed: 3000 + i }), -1, `read ${i}`);
      assert.equal(await a.call('verify', { at: local[i] + lens[i], len: 64, expect: new Uint8Array(64) }), -1);
    }
  });

  it('many concurrent fetch-and-adds give the right total, then compare-and-swap', async () => {
    const count = 200;
    const counter = await b.alloc(8);
    const results = await a.alloc(8 * count);
    const adds: SendRequest[] = Array.from({ length: count }, (_, i) => ({
      wrId: BigInt(1000 + i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SIGNALED, sgList: [a.sge(results + 8 * i, 8)],
      remoteAddr: counter, rkey: b.info.rkey, compareAdd: BigInt(i + 1),
    }));
    await a.call('postSend', { qp: 'rc', wrs: adds });
    const done = await a.waitCq(count);
    checkCqes(done, CqeOpcode.FetchAdd, adds.map((w) => w.wrId));
    const total = (count * (count + 1)) / 2;
    const value = (bytes: Uint8Array, off = 0) => Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(off, true));
    assert.equal(value(await b.call<Uint8Array>('read', { at: counter, len: 8 })), total);
    // Executed in order, so each add saw the sum of those before it.
    const olds = await a.call<Uint8Array>('read', { at: results, len: 8 * count });
    for (let i = 0; i < count; i++) assert.equal(value(olds, 8 * i), (i * (i + 1)) / 2, `old value of add ${i}`);

    const casResult = await a.alloc(8);
    await a.call('postSend', {
      qp: 'rc', wrs: [
        { wrId: 2000n, opcode: SendOpcode.AtomicCmpAndSwp, flags: SIGNALED, sgList: [a.sge(casResult, 8)], remoteAddr: counter, rkey: b.info.rkey, compareAdd: BigInt(total), swap: 7n },
        { wrId: 2001n, opcode: SendOpcode.AtomicCmpAndSwp, flags: SIGNALED, sgList: [a.sge(casResult, 8)], remoteAddr: counter, rkey: b.info.rkey, compareAdd: BigInt(total), swap: 9n },
      ],
    });
    checkCqes(await a.waitCq(2), CqeOpcode.CompSwap, [2000n, 2001n]);
    // The first swap matched; the second saw 7, did not match, and left it.
    assert.equal(value(await b.call<Uint8Array>('read', { at: counter, len: 8 })), 7);
    assert.equal(value(await a.call<Uint8Array>('read', { at: casResult, len: 8 })), 7);
  });

  it('UD SEND: datagrams up to the MTU with the GRH area ahead of the payload', async () => {
    const sizes = [1, 1000, 4096];
    const ah = await a.call<number>('createAh', { ip: b.ip });
    const dst = await Promise.all(sizes.map(() => b.alloc(GRH_BYTES + 4096 + 64)));
    const src = await Promise.all(sizes.map((n) => a.alloc(n)));
    await Promise.all(sizes.map((n, i) => a.call('fill', { at: src[i], len: n, seed: 4000 + i })));
    await b.call('postRecv', { qp: 'ud', wrs: sizes.map((_, i) => ({ wrId: BigInt(500 + i), sgList: [b.sge(dst[i], GRH_BYTES + 4096 + 64)] })) });
    const sends: SendRequest[] = sizes.map((n, i) => ({
      wrId: BigInt(50 + i), opcode: SendOpcode.Send, flags: SIGNALED, sgList: [a.sge(src[i], n)], ah, remoteQpn: b.info.udQpn, remoteQkey: UD_QKEY,
    }));
    await a.call('postSend', { qp: 'ud', wrs: sends });
    const [sent, received] = await Promise.all([a.waitCq(sizes.length), b.waitCq(sizes.length)]);
    checkCqes(sent, CqeOpcode.Send, sends.map((s) => s.wrId));
    checkCqes(received, CqeOpcode.Recv, [500n, 501n, 502n]);
    for (let i = 0; i < sizes.length; i++) {
      assert.equal(received[i].byteLen, GRH_BYTES + sizes[i]);
      assert.equal(received[i].srcQp, a.info.udQpn);
      assert.equal(received[i].qpNum, b.info.udQpn);
      assert.equal(await b.call('verify', { at: dst[i] + GRH_BYTES, len: sizes[i], seed: 4000 + i }), -1, `datagram ${i}`);
      assert.equal(await b.call('verify', { at: dst[i] + GRH_BYTES + sizes[i], len: 64, expect: new Uint8Array(64) }), -1);
    }
  });

  it('no completion is left over or duplicated on either side', async () => {
    // One more round trip in each direction flushes anything still in flight.
    const [bufA, bufB] = [await a.alloc(64), await b.alloc(64)];
    await Promise.all([
      a.call('postRecv', { qp: 'rc', wrs: [{ wrId: 7001n, sgList: [a.sge(bufA, 64)] }] }),
      b.call('postRecv', { qp: 'rc', wrs: [{ wrId: 7002n, sgList: [b.sge(bufB, 64)] }] }),
    ]);
    await a.call('postSend', { qp: 'rc', wrs: [{ wrId: 7003n, opcode: SendOpcode.Send, flags: SIGNALED, inline: new Uint8Array(8).fill(1) }] });
    await b.call('postSend', { qp: 'rc', wrs: [{ wrId: 7004n, opcode: SendOpcode.Send, flags: SIGNALED, inline: new Uint8Array(8).fill(2) }] });
    const [ca, cb] = await Promise.all([a.waitCq(2), b.waitCq(2)]);
    assert.deepEqual(ca.map((c) => c.wrId).sort(), [7001n, 7003n]);
    assert.deepEqual(cb.map((c) => c.wrId).sort(), [7002n, 7004n]);
    assert.deepEqual(await a.call('poll'), []);
    assert.deepEqual(await b.call('poll'), []);
  });
});
