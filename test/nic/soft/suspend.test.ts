// SUSPENDED QPs (R6) on the loopback hub: which states suspend and resume, what is refused, and
// what a suspended QP does with what reaches it — requests answered with an RNR NAK naming the
// shortest timer (rnr-nak) or dropped (drop), never executed; ACKs recorded and applied at resume;
// READ responses and atomic ACKs dropped and asked for again — and resume: the PSN-sequence NAK
// that sends the peer back at once, the go-back-N from the oldest unacknowledged PSN, and retry
// budgets that time spent suspended does not use up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { gpa } from '../../../src/memory/index.js';
import { LoopbackHub } from '../../../src/net/loopback.js';
import { VerbsError, VerbsErrorCode } from '../../../src/nic/errors.js';
import type { Link, LinkAddress, PacketHandler } from '../../../src/nic/link.js';
import { QpAttr, QpState, QpType } from '../../../src/nic/qp-state.js';
import { AethType, aethTypeOf, aethValueOf } from '../../../src/nic/roce/headers.js';
import { Opcode } from '../../../src/nic/roce/opcodes.js';
import { SUSPENDED_RNR_TIMER } from '../../../src/nic/roce/suspended.js';
import { PathMtu, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr } from '../../../src/nic/verbs.js';
import {
  BUF_GPA, BUF_IOVA, type Guest, type GuestOptions, type RcOptions, assertOk, bytesAt, closeAll, completions, connectRc, fill, guest, pattern, settle,
} from './fixtures.js';

const S = QpState;
const A = QpAttr;
const PSN = 0x1000;
const code = (c: VerbsErrorCode, msg?: RegExp) => (e: unknown) => e instanceof VerbsError && e.code === c && (msg === undefined || msg.test(e.message));

/** Watches one guest's link: records what it sends; while `hold` is set keeps what arrives. */
class Tap implements Link {
  readonly sent: Uint8Array[] = [];
  hold = false;
  private held: [Uint8Array, LinkAddress][] = [];
  private handler: PacketHandler | null = null;
  constructor(private readonly inner: Link) {
    inner.onPacket((packet, from) => {
      if (this.hold) this.held.push([packet.slice(), from]);
      else this.handler?.(packet, from);
    });
  }
  get localIp(): string {
    return this.inner.localIp;
  }
  get localPort(): number {
    return this.inner.localPort;
  }
  get heldCount(): number {
    return this.held.length;
  }
  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    this.sent.push(packet.slice());
    this.inner.send(packet, dstIp, dstPort);
  }
  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }
  /** Stop holding; hand what was held to the provider (`deliver`) or lose it. */
  release(deliver: boolean): void {
    this.hold = false;
    for (const [packet, from] of this.held.splice(0)) if (deliver) this.handler?.(packet, from);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function tapped(o: GuestOptions = {}): { a: Guest; b: Guest; ta: Tap; tb: Tap } {
  const hub = new LoopbackHub();
  const taps: Tap[] = [];
  const wrap = (l: Link): Link => {
    const t = new Tap(l);
    taps.push(t);
    return t;
  };
  const a = guest(hub, '127.0.1.5', { ...o, wrap });
  const b = guest(hub, '127.0.1.6', { ...o, wrap });
  return { a, b, ta: taps[0], tb: taps[1] };
}

const ev = (g: Guest, name: string): number => g.dev.counters.events.get(name) ?? 0;

async function waitFor(what: string, cond: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`still waiting for ${what} after ${limitMs} ms`);
    await tick();
  }
}

function u64At(g: Guest, off: number): bigint {
  return g.dm.guest.view.getBigUint64(g.dm.guest.translate(gpa(BUF_GPA + off), 8), true);
}

const psnOf = (p: Uint8Array): number => (p[9] << 16) | (p[10] << 8) | p[11];

function rcQp(g: Guest): number {
  const cap = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 2, maxInlineBytes: 64 };
  return g.dev.createQp({ type: QpType.Rc, pd: g.pd, sendCq: g.cq, recvCq: g.cq, cap, sigAll: true });
}

/** Step a new RC QP from RESET along RESET -> INIT -> RTR -> RTS -> SQD (or to ERR) up to `to`. */
function stepTo(g: Guest, qpn: number, to: QpState, peerIp: string): void {
  if (to === S.Reset) return;
  if (to === S.Err) return g.dev.modifyQp(qpn, { qpState: S.Err }, A.STATE);
  g.dev.modifyQp(qpn, { qpState: S.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: 0 }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
  if (to === S.Init) return;
  g.dev.modifyQp(qpn, {
    qpState: S.Rtr, pathMtu: PathMtu.Mtu1024, destQpNum: 0x99, rqPsn: 0, maxDestRdAtomic: 1, minRnrTimer: 1,
    ahAttr: { dgid: peerIp, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 },
  }, A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER);
  if (to === S.Rtr) return;
  g.dev.modifyQp(qpn, { qpState: S.Rts, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
  if (to === S.Rts) return;
  g.dev.modifyQp(qpn, { qpState: S.Sqd }, A.STATE);
}

/** A UD QP in SQE: a message over the MTU fails and stops its send queue (IBTA 10.3.1). */
async function udInSqe(g: Guest, peerIp: string): Promise<number> {
  const cap = { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
  const qpn = g.dev.createQp({ type: QpType.Ud, pd: g.pd, sendCq: g.cq, recvCq: g.cq, cap, sigAll: true });
  g.dev.modifyQp(qpn, { qpState: S.Init, pkeyIndex: 0, portNum: 1, qkey: 7 }, A.STATE | A.PKEY_INDEX | A.PORT | A.QKEY);
  g.dev.modifyQp(qpn, { qpState: S.Rtr }, A.STATE);
  g.dev.modifyQp(qpn, { qpState: S.Rts, sqPsn: 0 }, A.STATE | A.SQ_PSN);
  const ah = g.dev.createAh(g.pd, { dgid: peerIp, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 });
  g.dev.postSend(qpn, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: 5000, lkey: g.mr.lkey }], ah, remoteQpn: 0x99, remoteQkey: 7 }]);
  const [wc] = await completions(g, 1);
  assert.equal(wc.status, WcStatus.LocLenErr);
  assert.equal(g.dev.queryQp(qpn).qpState, S.Sqe);
  return qpn;
}

const write = (g: Guest, peer: Guest, wrId: bigint, off: number, len: number, remoteOff = off): SendWr => ({
  wrId, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA + off, length: len, lkey: g.mr.lkey }], remoteAddr: BUF_IOVA + remoteOff, rkey: peer.mr.rkey,
});
const read = (g: Guest, peer: Guest, wrId: bigint, off: number, len: number, remoteOff: number): SendWr => ({
  wrId, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA + off, length: len, lkey: g.mr.lkey }], remoteAddr: BUF_IOVA + remoteOff, rkey: peer.mr.rkey,
});
const fetchAdd = (g: Guest, peer: Guest, wrId: bigint, off: number, remoteOff: number, add: bigint): SendWr => ({
  wrId, opcode: WrOpcode.AtomicFetchAndAdd, flags: 0, sgList: [{ addr: BUF_IOVA + off, length: 8, lkey: g.mr.lkey }], remoteAddr: BUF_IOVA + remoteOff, rkey: peer.mr.rkey, compareAdd: add,
});
const send = (g: Guest, wrId: bigint, off: number, len: number): SendWr => ({ wrId, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA + off, length: len, lkey: g.mr.lkey }] });

function connect(o: RcOptions = {}, go: GuestOptions = {}) {
  const t = tapped(go);
  const [qa, qb] = connectRc(t.a, t.b, { sqPsn: PSN, mtu: PathMtu.Mtu1024, ...o });
  return { ...t, qa, qb };
}

describe('SUSPENDED: the state machine', () => {
  it('suspends from RTR, RTS, SQD and SQE only, and resumes to the state it left', async () => {
    const { a, b } = tapped();
    for (const state of [S.Reset, S.Init, S.Rtr, S.Rts, S.Sqd, S.Err]) {
      const qpn = rcQp(a);
      stepTo(a, qpn, state, b.ip);
      const allowed = state === S.Rtr || state === S.Rts || state === S.Sqd;
      for (const policy of ['rnr-nak', 'drop'] as const) {
        if (!allowed) {
          assert.throws(() => a.dev.suspendQp(qpn, policy), code(VerbsErrorCode.InvalidArgument, /cannot be suspended/), `${S[state]} ${policy}`);
          assert.equal(a.dev.queryQp(qpn).qpState, state);
          continue;
        }
        a.dev.suspendQp(qpn, policy);
        assert.equal(a.dev.queryQp(qpn).qpState, S.Suspended);
        a.dev.resumeQp(qpn);
        assert.equal(a.dev.queryQp(qpn).qpState, state);
      }
    }
    const ud = await udInSqe(a, b.ip);
    a.dev.suspendQp(ud, 'drop');
    assert.equal(a.dev.queryQp(ud).qpState, S.Suspended);
    a.dev.resumeQp(ud);
    assert.equal(a.dev.queryQp(ud).qpState, S.Sqe);
    assert.equal(ev(a, 'suspend'), 7);
    assert.equal(ev(a, 'resume'), 7);
    await closeAll(a, b);
  });

  it('refuses a second suspend, a resume of a QP not suspended, an unknown policy or QPN, and guest moves other than to ERR or RESET', async () => {
    const { a, b, qa } = connect();
    assert.throws(() => a.dev.suspendQp(0xabcde, 'drop'), code(VerbsErrorCode.NoSuchObject));
    assert.throws(() => a.dev.resumeQp(0xabcde), code(VerbsErrorCode.NoSuchObject));
    assert.throws(() => a.dev.suspendQp(qa, 'later' as 'drop'), code(VerbsErrorCode.InvalidArgument, /policy/));
    assert.throws(() => a.dev.resumeQp(qa), code(VerbsErrorCode.InvalidArgument, /not SUSPENDED/));
    a.dev.suspendQp(qa, 'rnr-nak');
    assert.throws(() => a.dev.suspendQp(qa, 'rnr-nak'), code(VerbsErrorCode.InvalidArgument, /SUSPENDED cannot be suspended/));
    for (const to of [S.Rts, S.Sqd, S.Init]) {
      assert.throws(() => a.dev.modifyQp(qa, { qpState: to }, A.STATE), code(VerbsErrorCode.InvalidArgument, /SUSPENDED/));
    }
    // Work posted while suspended waits; moving the QP to ERR (always allowed) flushes it.
    a.dev.postSend(qa, [write(a, b, 1n, 0, 100), write(a, b, 2n, 0, 100)]);
    await settle(10);
    assert.equal(a.dev.pollCq(a.cq, 4).length, 0);
    a.dev.modifyQp(qa, { qpState: S.Err }, A.STATE);
    const wcs = await completions(a, 2);
    assert.deepEqual(wcs.map((w) => [w.wrId, WcStatus[w.status]]), [[1n, 'WrFlushErr'], [2n, 'WrFlushErr']]);
    // RESET and destroy work on a suspended QP too.
    const q2 = rcQp(a);
    stepTo(a, q2, S.Rts, b.ip);
    a.dev.suspendQp(q2, 'drop');
    a.dev.modifyQp(q2, { qpState: S.Reset }, A.STATE);
    assert.equal(a.dev.queryQp(q2).qpState, S.Reset);
    stepTo(a, q2, S.Rts, b.ip);
    a.dev.suspendQp(q2, 'drop');
    a.dev.destroyQp(q2);
    assert.throws(() => a.dev.queryQp(q2), code(VerbsErrorCode.NoSuchObject));
    await closeAll(a, b);
  });

  it('keeps work posted while suspended from RTS for resume, and flushes work posted while suspended from SQE', async () => {
    const { a, b, ta, qa } = connect();
    const ud = await udInSqe(a, b.ip);
    a.dev.suspendQp(ud, 'drop');
    a.dev.postSend(ud, [{ ...send(a, 5n, 0, 10), ah: a.dev.createAh(a.pd, { dgid: b.ip, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 }), remoteQpn: 0x99, remoteQkey: 7 }]);
    const [flushed] = await completions(a, 1);
    assert.deepEqual([flushed.wrId, flushed.status], [5n, WcStatus.WrFlushErr]);

    a.dev.suspendQp(qa, 'rnr-nak');
    const before = ta.sent.length;
    fill(a, 0, pattern(3000, 1));
    a.dev.postSend(qa, [write(a, b, 1n, 0, 3000)]);
    await settle(20);
    assert.equal(ta.sent.length, before, 'a suspended QP sends nothing');
    assert.equal(a.dev.pollCq(a.cq, 1).length, 0);
    a.dev.resumeQp(qa);
    assertOk(await completions(a, 1));
    assert.deepEqual(bytesAt(b, 0, 3000), pattern(3000, 1));
    await closeAll(a, b);
  });
});

describe('SUSPENDED: what reaches a suspended QP', () => {
  it('rnr-nak: each burst of requests gets one RNR NAK naming the shortest timer and the expected PSN; nothing executes until resume', async () => {
    const { a, b, tb, qa, qb } = connect();
    b.dev.postRecv(qb, [{ wrId: 50n, sgList: [{ addr: BUF_IOVA + 0x20000, length: 4096, lkey: b.mr.lkey }] }]);
    fill(b, 0x30000, pattern(2000, 3));
    b.dev.suspendQp(qb, 'rnr-nak');
    const sentBefore = tb.sent.length;
    fill(a, 0, pattern(5000, 2));
    a.dev.postSend(qa, [write(a, b, 1n, 0, 5000, 0x10000), send(a, 2n, 0, 1000), read(a, b, 3n, 0x8000, 2000, 0x30000), fetchAdd(a, b, 4n, 0x9000, 0x40000, 5n)]);
    await waitFor('three RNR NAKs at the requester', () => ev(a, 'RNR NAK received') >= 3);
    const naks = tb.sent.slice(sentBefore);
    assert.ok(naks.length >= 3);
    for (const p of naks) {
      assert.equal(p[0], Opcode.RcAck);
      assert.equal(aethTypeOf(p[12]), AethType.RnrNak);
      assert.equal(aethValueOf(p[12]), SUSPENDED_RNR_TIMER);
      assert.equal(psnOf(p), PSN, 'the expected PSN, unchanged');
    }
    // The rest of each burst was dropped, not answered; nothing was executed or written.
    assert.ok(ev(b, 'suspended: request dropped') > 0);
    assert.ok(bytesAt(b, 0x10000, 5000).every((x) => x === 0));
    assert.equal(u64At(b, 0x40000), 0n);
    assert.equal(b.dev.pollCq(b.cq, 4).length, 0, 'the receive was not consumed');
    assert.equal(a.dev.pollCq(a.cq, 4).length, 0);

    b.dev.resumeQp(qb);
    const wcs = await completions(a, 4);
    assertOk(wcs);
    assert.deepEqual(wcs.map((w) => w.wrId), [1n, 2n, 3n, 4n]);
    const [recv] = await completions(b, 1);
    assert.deepEqual([recv.wrId, recv.status, recv.byteLen], [50n, WcStatus.Success, 1000]);
    assert.deepEqual(bytesAt(b, 0x10000, 5000), pattern(5000, 2));
    assert.deepEqual(bytesAt(a, 0x8000, 2000), pattern(2000, 3));
    assert.equal(u64At(b, 0x40000), 5n);
    assert.equal(u64At(a, 0x9000), 0n);
    await settle(20);
    assert.equal(a.dev.pollCq(a.cq, 8).length + b.dev.pollCq(b.cq, 8).length, 0, 'exactly one completion each');
    assert.equal(a.dev.queryQp(qa).qpState, S.Rts);
    await closeAll(a, b);
  });

  it('drop: the peer hears nothing; on resume one sequence NAK sends it back at once (its ACK timer is off)', async () => {
    const { a, b, tb, qa, qb } = connect({ timeout: 0 });
    b.dev.suspendQp(qb, 'drop');
    const sentBefore = tb.sent.length;
    fill(a, 0, pattern(5000, 4));
    a.dev.postSend(qa, [write(a, b, 1n, 0, 5000)]);
    await waitFor('the write to reach b', () => ev(b, 'suspended: request dropped') >= 5);
    await settle(20);
    assert.equal(tb.sent.length, sentBefore, 'not one packet from the suspended QP');
    assert.equal(ev(a, 'RNR NAK received'), 0);
    // With timeout 0 the requester never times out: only the resume NAK can finish the write.
    b.dev.resumeQp(qb);
    assertOk(await completions(a, 1));
    assert.deepEqual(bytesAt(b, 0, 5000), pattern(5000, 4));
    assert.equal(ev(b, 'resume: sequence NAK sent'), 1);
    assert.equal(ev(a, 'sequence NAK received'), 1);
    assert.equal(ev(a, 'local ACK timeout'), 0);
    await closeAll(a, b);
  });

  it('records ACKs while suspended and applies them at resume; READ responses and atomic ACKs are asked for again', async () => {
    const { a, b, ta, qa } = connect();
    fill(a, 0, pattern(3000, 5));
    fill(b, 0x30000, pattern(2000, 6));
    const counter = 0x40000;
    b.dm.guest.view.setBigUint64(b.dm.guest.translate(gpa(BUF_GPA + counter), 8), 100n, true);
    ta.hold = true;
    a.dev.postSend(qa, [write(a, b, 1n, 0, 3000), read(a, b, 2n, 0x8000, 2000, 0x30000), fetchAdd(a, b, 3n, 0x9000, counter, 7n)]);
    // One ACK for the WRITE, two READ response packets, one atomic ACK.
    await waitFor('b to answer all three', () => ta.heldCount >= 4);
    a.dev.suspendQp(qa, 'rnr-nak');
    ta.release(true);
    await settle(20);
    assert.equal(a.dev.pollCq(a.cq, 4).length, 0, 'nothing completes while suspended');
    assert.equal(ev(a, 'suspended: ACK recorded'), 1);
    assert.equal(ev(a, 'suspended: response dropped'), 3);
    assert.equal(bytesAt(a, 0x8000, 2000).every((x) => x === 0), true, 'READ data was not placed');

    a.dev.resumeQp(qa);
    const wcs = await completions(a, 3);
    assertOk(wcs);
    assert.deepEqual(wcs.map((w) => w.wrId), [1n, 2n, 3n]);
    assert.deepEqual(bytesAt(a, 0x8000, 2000), pattern(2000, 6));
    assert.equal(u64At(a, 0x9000), 100n);
    assert.equal(u64At(b, counter), 107n, 'the fetch-add executed once');
    // The recorded ACK covered the WRITE: only the READ and the atomic went again, as duplicates.
    assert.equal(ev(b, 'duplicate request'), 2);
    assert.equal(ev(a, 'go-back-N on resume'), 1);
    await settle(20);
    assert.equal(a.dev.pollCq(a.cq, 4).length, 0);
    await closeAll(a, b);
  });

  it('drops datagrams arriving at a suspended UD QP', async () => {
    const hub = new LoopbackHub();
    const a = guest(hub, '127.0.1.5');
    const b = guest(hub, '127.0.1.6');
    const cap = { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
    const ud = (g: Guest): number => {
      const q = g.dev.createQp({ type: QpType.Ud, pd: g.pd, sendCq: g.cq, recvCq: g.cq, cap, sigAll: true });
      g.dev.modifyQp(q, { qpState: S.Init, pkeyIndex: 0, portNum: 1, qkey: 7 }, A.STATE | A.PKEY_INDEX | A.PORT | A.QKEY);
      g.dev.modifyQp(q, { qpState: S.Rtr }, A.STATE);
      g.dev.modifyQp(q, { qpState: S.Rts, sqPsn: 0 }, A.STATE | A.SQ_PSN);
      return q;
    };
    const qa = ud(a);
    const qb = ud(b);
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: 1000, lkey: b.mr.lkey }] }]);
    b.dev.suspendQp(qb, 'rnr-nak');
    const ah = a.dev.createAh(a.pd, { dgid: b.ip, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 });
    a.dev.postSend(qa, [{ ...send(a, 1n, 0, 100), ah, remoteQpn: qb, remoteQkey: 7 }]);
    assertOk(await completions(a, 1));
    await waitFor('the datagram to arrive', () => ev(b, 'suspended: request dropped') === 1);
    b.dev.resumeQp(qb);
    a.dev.postSend(qa, [{ ...send(a, 2n, 0, 100), ah, remoteQpn: qb, remoteQkey: 7 }]);
    const [wc] = await completions(b, 1);
    assert.equal(wc.wrId, 1n, 'the receive took the datagram sent after resume');
    await closeAll(a, b);
  });
});

describe('SUSPENDED: time suspended uses up no retries', () => {
  it('retry_cnt 1 with a 17 ms ACK timeout survives a long suspension whose ACK was lost', async () => {
    const { a, b, ta, qa } = connect({ retryCnt: 1, rnrRetry: 1, timeout: 12 });
    fill(a, 0, pattern(2000, 7));
    ta.hold = true;
    a.dev.postSend(qa, [write(a, b, 1n, 0, 2000)]);
    await waitFor('the ACK', () => ta.heldCount >= 1);
    a.dev.suspendQp(qa, 'drop');
    // (On a loaded machine the timer may have fired once already: that retry is not the test's.)
    const timeouts = ev(a, 'local ACK timeout');
    ta.release(false); // lost, as if sent to an address nobody held
    await settle(120);
    assert.equal(ev(a, 'local ACK timeout'), timeouts, 'the timer stood still');
    assert.equal(a.dev.queryQp(qa).qpState, S.Suspended);
    const duplicates = ev(b, 'duplicate request');
    a.dev.resumeQp(qa);
    const [wc] = await completions(a, 1);
    assert.equal(wc.status, WcStatus.Success);
    assert.equal(ev(b, 'duplicate request') - duplicates, 2, 'the two packets went again at once');
    assert.equal(a.dev.queryQp(qa).qpState, S.Rts);
    await closeAll(a, b);
  });

  it('rnr_retry 1 spent before the suspension is given back on resume', async () => {
    // b names a 41 ms RNR timer (code 24), so the test can act between a's retries.
    const { a, b, ta, qa, qb } = connect({ retryCnt: 1, rnrRetry: 1, minRnrTimer: 24, timeout: 14 });
    a.dev.postSend(qa, [send(a, 1n, 0, 100)]);
    await waitFor('the first RNR NAK', () => ev(a, 'RNR NAK received') === 1);
    a.dev.suspendQp(qa, 'rnr-nak');
    const sent = ta.sent.length;
    await settle(80);
    assert.equal(ta.sent.length, sent, 'the RNR timer stopped: nothing was resent');
    a.dev.resumeQp(qa);
    // Resent at once, NAKed again: without the budget back this would be RNR_RETRY_EXC_ERR.
    await waitFor('the second RNR NAK', () => ev(a, 'RNR NAK received') === 2);
    assert.equal(a.dev.pollCq(a.cq, 1).length, 0);
    b.dev.postRecv(qb, [{ wrId: 9n, sgList: [{ addr: BUF_IOVA, length: 100, lkey: b.mr.lkey }] }]);
    assertOk(await completions(a, 1));
    assertOk(await completions(b, 1));
    await closeAll(a, b);
  });
});
