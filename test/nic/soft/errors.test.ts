// Access and protection errors, each on a fresh connection: the requester gets the IBTA status,
// both QPs end in ERR, later work is flushed, and no byte outside what the MR grants changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Gpa, gpa } from '../../../src/memory/index.js';
import { QpState } from '../../../src/nic/qp-state.js';
import { Access, WcOpcode, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr } from '../../../src/nic/verbs.js';
import { BUF_GPA, BUF_IOVA, type Guest, KiB, MiB, closeAll, completions, connectRc, fill, pair, pattern } from './fixtures.js';

/** A small MR on `g`: iova 0x50000100, 5000 bytes, over two guest pages at BUF_GPA + 1 MiB. */
const SMALL_IOVA = 0x50000100;
const SMALL_LEN = 5000;
const SMALL_GPA = BUF_GPA + MiB;

function smallMr(g: Guest, access: number, pd = g.pd): number {
  const pages: Gpa[] = [gpa(SMALL_GPA), gpa(SMALL_GPA + 4096)];
  return g.dev.registerPhysical(pd, { iova: SMALL_IOVA, length: SMALL_LEN, access, pageShift: 12, pages }).rkey;
}

/** Canary bytes over the small MR's pages and 4 KiB either side. */
function plantCanaries(g: Guest): void {
  g.dm.guest.fill(gpa(SMALL_GPA - 4096), 4 * 4096, 0xa5);
}

function canariesIntact(g: Guest, except?: [number, number]): boolean {
  const bytes = g.dm.guest.slice(gpa(SMALL_GPA - 4096), 4 * 4096);
  for (let i = 0; i < bytes.length; i++) {
    const iova = SMALL_IOVA - 0x100 - 4096 + i;
    if (except && iova >= except[0] && iova < except[1]) continue;
    if (bytes[i] !== 0xa5) return false;
  }
  return true;
}

async function remoteFailure(wr: (a: Guest, b: Guest, smallRkey: number) => SendWr, o: { qpAccess?: number; mrAccess?: number } = {}): Promise<WcStatus> {
  const { a, b } = pair();
  const [qa, qb] = connectRc(a, b, { access: o.qpAccess });
  plantCanaries(b);
  fill(a, 0, pattern(64 * KiB, 1));
  const small = o.mrAccess !== undefined ? smallMr(b, o.mrAccess) : 0;
  a.dev.postSend(qa, [wr(a, b, small), { wrId: 99n, opcode: WrOpcode.Send, flags: 0, sgList: [] }]);
  const wcs = await completions(a, 2);
  assert.equal(wcs[1].wrId, 99n);
  assert.equal(wcs[1].status, WcStatus.WrFlushErr);
  assert.equal(a.dev.queryQp(qa).qpState, QpState.Err);
  assert.equal(b.dev.queryQp(qb).qpState, QpState.Err, 'the responder moves to ERR too (class C error)');
  assert.ok(canariesIntact(b), 'bytes around the target MR are unchanged');
  await closeAll(a, b);
  return wcs[0].status;
}

type RkeyOf = (b: Guest, smallRkey: number) => number;
const write = (rkey: RkeyOf, remoteAddr: number, length: number) => (a: Guest, b: Guest, small: number): SendWr => ({
  wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length, lkey: a.mr.lkey }], remoteAddr, rkey: rkey(b, small),
});
const RW = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
const SMALL_RKEY: RkeyOf = (_b, small) => small;

describe('remote access errors', () => {
  it('a bad R_Key', async () => {
    assert.equal(await remoteFailure(write((b) => (b.mr.rkey ^ 0x55) >>> 0, BUF_IOVA, 100)), WcStatus.RemAccessErr);
  });
  it('a stale R_Key (its MR deregistered)', async () => {
    assert.equal(await remoteFailure((a, b) => {
      const rkey = smallMr(b, RW);
      b.dev.deregMr(rkey);
      return write(() => rkey, SMALL_IOVA, 10)(a, b, 0);
    }), WcStatus.RemAccessErr);
  });
  it('a WRITE starting before the MR', async () => {
    assert.equal(await remoteFailure(write(SMALL_RKEY, SMALL_IOVA - 1, 100), { mrAccess: RW }), WcStatus.RemAccessErr);
  });
  it('a multi-packet WRITE running past the end of the MR', async () => {
    assert.equal(await remoteFailure(write(SMALL_RKEY, SMALL_IOVA + 100, SMALL_LEN), { mrAccess: RW }), WcStatus.RemAccessErr);
  });
  it('a WRITE to an MR without REMOTE_WRITE', async () => {
    assert.equal(await remoteFailure(write(SMALL_RKEY, SMALL_IOVA, 8), { mrAccess: Access.LOCAL_WRITE | Access.REMOTE_READ }), WcStatus.RemAccessErr);
  });
  it('a READ from an MR without REMOTE_READ', async () => {
    assert.equal(await remoteFailure((a, _b, rkey) => ({
      wrId: 1n, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA, length: 64, lkey: a.mr.lkey }], remoteAddr: SMALL_IOVA, rkey,
    }), { mrAccess: Access.LOCAL_WRITE | Access.REMOTE_WRITE }), WcStatus.RemAccessErr);
  });
  it('an atomic on an MR without REMOTE_ATOMIC', async () => {
    assert.equal(await remoteFailure((a, _b, rkey) => ({
      wrId: 1n, opcode: WrOpcode.AtomicFetchAndAdd, flags: 0, sgList: [{ addr: BUF_IOVA, length: 8, lkey: a.mr.lkey }], remoteAddr: SMALL_IOVA + 0xf00, rkey, compareAdd: 1n,
    }), { mrAccess: Access.LOCAL_WRITE | Access.REMOTE_WRITE }), WcStatus.RemAccessErr);
  });
  it('a WRITE to a QP that grants no remote write', async () => {
    assert.equal(await remoteFailure(write((b) => b.mr.rkey, BUF_IOVA, 8), { qpAccess: Access.REMOTE_READ }), WcStatus.RemAccessErr);
  });
  it('an MR of another PD', async () => {
    assert.equal(await remoteFailure((a, b) => {
      const other = b.dev.allocPd();
      const rkey = smallMr(b, RW, other);
      return write(() => rkey, SMALL_IOVA, 8)(a, b, 0);
    }), WcStatus.RemAccessErr);
  });
  it('a misaligned atomic is an invalid request', async () => {
    assert.equal(await remoteFailure((a, b) => ({
      wrId: 1n, opcode: WrOpcode.AtomicCmpAndSwp, flags: 0, sgList: [{ addr: BUF_IOVA, length: 8, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 4, rkey: b.mr.rkey, compareAdd: 0n, swap: 1n,
    })), WcStatus.RemInvReqErr);
  });

  it('writes exactly the granted range and nothing around it', async () => {
    const { a, b } = pair();
    const [qa] = connectRc(a, b);
    plantCanaries(b);
    const rkey = smallMr(b, RW);
    const data = pattern(SMALL_LEN, 5);
    fill(a, 0, data);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: SMALL_LEN, lkey: a.mr.lkey }], remoteAddr: SMALL_IOVA, rkey }]);
    const [wc] = await completions(a, 1);
    assert.equal(wc.status, WcStatus.Success);
    assert.ok(Buffer.from(b.dm.guest.slice(gpa(SMALL_GPA + 0x100), SMALL_LEN)).equals(Buffer.from(data)));
    assert.ok(canariesIntact(b, [SMALL_IOVA, SMALL_IOVA + SMALL_LEN]));
    await closeAll(a, b);
  });
});

describe('local errors', () => {
  async function localFailure(sge: (g: Guest) => { addr: number; length: number; lkey: number }, opcode = WrOpcode.Send): Promise<WcStatus> {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b);
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 64 * KiB, lkey: b.mr.lkey }] }]);
    a.dev.postSend(qa, [
      { wrId: 1n, opcode, flags: 0, sgList: [sge(a)], remoteAddr: BUF_IOVA, rkey: b.mr.rkey },
      { wrId: 2n, opcode: WrOpcode.Send, flags: 0, sgList: [] },
    ]);
    const wcs = await completions(a, 2);
    assert.equal(wcs[1].status, WcStatus.WrFlushErr);
    assert.equal(a.dev.queryQp(qa).qpState, QpState.Err);
    await closeAll(a, b);
    return wcs[0].status;
  }

  it('a bad L_Key', async () => {
    assert.equal(await localFailure((a) => ({ addr: BUF_IOVA, length: 10, lkey: a.mr.lkey + 1 })), WcStatus.LocProtErr);
  });
  it('an SGE past the end of its MR', async () => {
    assert.equal(await localFailure((a) => ({ addr: BUF_IOVA + 4 * MiB - 5, length: 10, lkey: a.mr.lkey })), WcStatus.LocProtErr);
  });
  it('a READ into an MR without LOCAL_WRITE', async () => {
    assert.equal(await localFailure((a) => ({ addr: SMALL_IOVA, length: 10, lkey: smallMr(a, Access.REMOTE_READ) }), WrOpcode.RdmaRead), WcStatus.LocProtErr);
  });
  it('an L_Key of another PD', async () => {
    assert.equal(await localFailure((a) => ({ addr: SMALL_IOVA, length: 10, lkey: smallMr(a, RW, a.dev.allocPd()) })), WcStatus.LocProtErr);
  });

  it('a receive WQE with a bad L_Key: LOC_PROT_ERR there, REM_OP_ERR at the sender', async () => {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b);
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 100, lkey: b.mr.lkey ^ 0x100 }] }, { wrId: 2n, sgList: [] }]);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 10, lkey: a.mr.lkey }] }]);
    const [sent] = await completions(a, 1);
    assert.equal(sent.status, WcStatus.RemOpErr);
    const recvs = await completions(b, 2);
    assert.deepEqual(recvs.map((w) => [w.wrId, WcStatus[w.status], w.opcode]), [[1n, 'LocProtErr', WcOpcode.Recv], [2n, 'WrFlushErr', WcOpcode.Recv]]);
    await closeAll(a, b);
  });

  it('a receive WQE too small: LOC_LEN_ERR there, REM_INV_REQ_ERR at the sender', async () => {
    const { a, b } = pair();
    const [qa, qb] = connectRc(a, b);
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 2000, lkey: b.mr.lkey }] }]);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 5000, lkey: a.mr.lkey }] }]);
    const [sent] = await completions(a, 1);
    assert.equal(sent.status, WcStatus.RemInvReqErr);
    const [recv] = await completions(b, 1);
    assert.equal(recv.status, WcStatus.LocLenErr);
    await closeAll(a, b);
  });
});
