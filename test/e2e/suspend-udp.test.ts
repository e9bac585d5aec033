// R6–R8 end to end on real UDP sockets (loopback, 127.0.22.x): two VMs (src/host/vm.ts) run RC
// traffic both ways — WRITE, SEND/RECV, READ, fetch-add — through the guest library and the
// device; one side is suspended mid-traffic for a few hundred milliseconds with each policy, and
// once with its address released and bound again by a new socket, a destination VM having been
// built meanwhile. The suspended side has retry_cnt 1 and rnr_retry 1. Afterwards every work
// request has exactly one completion, all successful, guest memory holds exactly what was sent,
// each fetch-add executed once, and no QP is in ERR.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessFlag, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { Cqe } from '../../src/device/cqe.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import type { SendRequest } from '../../src/guest/rdma/wqe.js';
import { type RcAttributes, connectRc } from '../../src/host/connect.js';
import { Vm } from '../../src/host/vm.js';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { QpState } from '../../src/nic/qp-state.js';
import { pattern } from './pattern.js';

const A_IP = '127.0.22.1';
const B_IP = '127.0.22.2';
const KiB = 1024;
const ROUNDS = 48;
const WRITE_BYTES = 32 * KiB;
const SEND_BYTES = 4 * KiB;
const READ_BYTES = 16 * KiB;
/** Work requests each side posts: per round a WRITE, a SEND, a READ and a fetch-add. */
const SENDS = 4 * ROUNDS;
/** Longer than the suspended side's ACK timeout: a timer left running would fire. */
const SUSPENDED_MS = 400;
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
/**
 * The side that is suspended: one retry of each kind. Its 268 ms ACK timeout is long enough that
 * the two VMs sharing one event loop on a loaded machine do not make it time out twice in a row.
 */
const FRAGILE: Partial<RcAttributes> = { retryCnt: 1, rnrRetry: 1, timeout: 16 };
/** Its peer: the usual budgets. */
const STURDY: Partial<RcAttributes> = { retryCnt: 7, rnrRetry: 7, timeout: 16 };

interface Side {
  vm: Vm;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
  /** What this side sends from, receives into, and offers its peer (GPAs; the MR is all memory). */
  at: { writeSrc: number; writeDst: number; sendSrc: number; recvDst: number; readSrc: number; readDst: number; counter: number; faddOut: number };
  got: Cqe[];
}

const open: Vm[] = [];
afterEach(async () => {
  for (const vm of open.splice(0)) await vm.close();
});

async function side(ip: string): Promise<Side> {
  const vm = await Vm.open({ ip, ramBytes: 32 << 20 });
  open.push(vm);
  const g = vm.guest;
  const pd = await g.createPd();
  const cq = await g.createCq(1024);
  const cap = { maxSendWr: 256, maxRecvWr: 256, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
  const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap });
  const mr = await g.getDmaMr(pd, ALL);
  const at = {
    writeSrc: vm.allocBuffer(ROUNDS * WRITE_BYTES), writeDst: vm.allocBuffer(ROUNDS * WRITE_BYTES),
    sendSrc: vm.allocBuffer(ROUNDS * SEND_BYTES), recvDst: vm.allocBuffer(ROUNDS * SEND_BYTES),
    readSrc: vm.allocBuffer(ROUNDS * READ_BYTES), readDst: vm.allocBuffer(ROUNDS * READ_BYTES),
    counter: vm.allocBuffer(8), faddOut: vm.allocBuffer(ROUNDS * 8),
  };
  return { vm, cq, qp, lkey: mr.lkey, rkey: mr.rkey, at, got: [] };
}

async function connectPair(a: Side, b: Side, attrsA: Partial<RcAttributes>, attrsB: Partial<RcAttributes>): Promise<void> {
  const rd = { maxRdAtomic: 16, maxDestRdAtomic: 16 };
  await connectRc(a.qp, 0x100, { ip: B_IP, qpn: b.qp.qpn, psn: 0xfffff0 }, { ...rd, ...attrsA });
  await connectRc(b.qp, 0xfffff0, { ip: A_IP, qpn: a.qp.qpn, psn: 0x100 }, { ...rd, ...attrsB });
}

const seedOf = (self: Side, kind: number, i: number): number => (self.vm.ip === A_IP ? 1 : 2) * 100_000 + kind * 1000 + i;

/** Post every receive, then every send, of one side's share of the traffic. */
function post(self: Side, peer: Side): void {
  const { at } = self;
  self.qp.postRecv(Array.from({ length: ROUNDS }, (_, i) => ({ wrId: BigInt(5000 + i), sgList: [{ addr: at.recvDst + i * SEND_BYTES, length: SEND_BYTES, lkey: self.lkey }] })));
  const wrs: SendRequest[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    self.vm.bytes(at.writeSrc + i * WRITE_BYTES, WRITE_BYTES).set(pattern(seedOf(self, 1, i), WRITE_BYTES));
    self.vm.bytes(at.sendSrc + i * SEND_BYTES, SEND_BYTES).set(pattern(seedOf(self, 2, i), SEND_BYTES));
    self.vm.bytes(at.readSrc + i * READ_BYTES, READ_BYTES).set(pattern(seedOf(self, 3, i), READ_BYTES));
    const sge = (addr: number, length: number) => [{ addr, length, lkey: self.lkey }];
    wrs.push(
      { wrId: BigInt(1000 + i), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, sgList: sge(at.writeSrc + i * WRITE_BYTES, WRITE_BYTES), remoteAddr: peer.at.writeDst + i * WRITE_BYTES, rkey: peer.rkey },
      { wrId: BigInt(2000 + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: sge(at.sendSrc + i * SEND_BYTES, SEND_BYTES) },
      { wrId: BigInt(3000 + i), opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, sgList: sge(at.readDst + i * READ_BYTES, READ_BYTES), remoteAddr: peer.at.readSrc + i * READ_BYTES, rkey: peer.rkey },
      { wrId: BigInt(4000 + i), opcode: SendOpcode.AtomicFetchAndAdd, flags: SendFlag.SIGNALED, sgList: sge(at.faddOut + 8 * i, 8), remoteAddr: peer.at.counter, rkey: peer.rkey, compareAdd: 1n },
    );
  }
  self.qp.postSend(wrs);
}

function pollBoth(a: Side, b: Side): void {
  a.got.push(...a.cq.poll());
  b.got.push(...b.cq.poll());
}

/** Keep both guests polling for `ms`, as their applications would. */
async function run(a: Side, b: Side, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    pollBoth(a, b);
    await sleep(1);
  }
  pollBoth(a, b);
}

async function runUntil(a: Side, b: Side, what: string, done: () => boolean, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    pollBoth(a, b);
    if (done()) return;
    if (Date.now() > deadline) assert.fail(`${what}: A has ${a.got.length}, B ${b.got.length} of ${SENDS + ROUNDS} completions after ${limitMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const total = SENDS + ROUNDS;
const ev = (s: Side, name: string): number => s.vm.verbs.counters.events.get(name) ?? 0;

/** Exactly one successful completion per work request; memory as the peer sent it; QPs in RTS. */
function check(self: Side, peer: Side): void {
  const name = self.vm.ip;
  const ids = self.got.map((c) => c.wrId);
  const bad = self.got.filter((c) => c.status !== CqeStatus.Success);
  const events = (x: Side) => JSON.stringify(Object.fromEntries(x.vm.verbs.counters.events));
  assert.deepEqual(bad.slice(0, 2).map((c) => [c.wrId, CqeStatus[c.status]]), [], `${name}: failed completions; events ${events(self)}; peer ${events(peer)}`);
  assert.equal(new Set(ids).size, ids.length, `${name}: a work request completed twice`);
  const want = [1000, 2000, 3000, 4000, 5000].flatMap((base) => Array.from({ length: ROUNDS }, (_, i) => BigInt(base + i)));
  assert.deepEqual([...ids].sort((x, y) => (x < y ? -1 : 1)), want, `${name}: completions`);
  for (const c of self.got) if (c.wrId >= 5000n) assert.equal(c.byteLen, SEND_BYTES);
  const same = (got: Uint8Array, seed: number, what: string) => assert.ok(Buffer.from(got).equals(Buffer.from(pattern(seed, got.length))), `${name}: ${what}`);
  for (let i = 0; i < ROUNDS; i++) {
    same(self.vm.bytes(self.at.writeDst + i * WRITE_BYTES, WRITE_BYTES), seedOf(peer, 1, i), `WRITE ${i} from the peer`);
    same(self.vm.bytes(self.at.recvDst + i * SEND_BYTES, SEND_BYTES), seedOf(peer, 2, i), `SEND ${i} from the peer`);
    same(self.vm.bytes(self.at.readDst + i * READ_BYTES, READ_BYTES), seedOf(peer, 3, i), `READ ${i} of the peer`);
  }
  const view = (at: number, len: number) => new DataView(self.vm.bytes(at, len).slice().buffer);
  assert.equal(view(self.at.counter, 8).getBigUint64(0, true), BigInt(ROUNDS), `${name}: the peer's fetch-adds each executed once`);
  const olds = new Set(Array.from({ length: ROUNDS }, (_, i) => view(self.at.faddOut, 8 * ROUNDS).getBigUint64(8 * i, true)));
  assert.deepEqual([...olds].sort((x, y) => (x < y ? -1 : 1)), Array.from({ length: ROUNDS }, (_, i) => BigInt(i)), `${name}: fetch-add results`);
  assert.equal(self.vm.verbs.queryQp(self.qp.qpn).qpState, QpState.Rts, `${name}: QP state`);
  assert.equal(self.vm.verbs.counters.internalErrors, 0);
}

/** Start the traffic and return once A has completions but is far from done: mid-traffic. */
async function startTraffic(a: Side, b: Side): Promise<void> {
  post(a, b);
  post(b, a);
  await runUntil(a, b, 'the first completions', () => a.got.length >= 16);
}

async function finish(a: Side, b: Side): Promise<void> {
  await runUntil(a, b, 'every completion', () => a.got.length >= total && b.got.length >= total);
  await run(a, b, 50);
  check(a, b);
  check(b, a);
}

describe('a VM suspended mid-traffic on real UDP', () => {
  it('rnr-nak: the peer gets RNR NAKs; after resume everything completes exactly once', async () => {
    const a = await side(A_IP);
    const b = await side(B_IP);
    await connectPair(a, b, FRAGILE, STURDY);
    await startTraffic(a, b);
    a.vm.verbs.suspendQp(a.qp.qpn, 'rnr-nak');
    const atSuspend = a.got.length;
    const timeouts = ev(a, 'local ACK timeout');
    // Completions made before the suspension reach the guest's CQ; after that A's device and
    // provider write nothing into its memory (R4 would see it).
    await run(a, b, 30);
    a.vm.dirtyLog.start();
    await run(a, b, SUSPENDED_MS);
    assert.deepEqual([...a.vm.dirtyLog.harvest()], [], 'pages A wrote while suspended');
    assert.ok(atSuspend < total, 'work was outstanding when A was suspended');
    assert.ok(ev(b, 'RNR NAK received') > 0, 'B was told to wait');
    assert.ok(ev(a, 'suspended: RNR NAK sent') > 0);
    assert.equal(ev(a, 'local ACK timeout'), timeouts, "A's ACK timer stood still");
    a.vm.verbs.resumeQp(a.qp.qpn);
    await finish(a, b);
    assert.ok(a.vm.dirtyLog.harvest().length > 0, 'what resume completed went through the logged path');
    assert.equal(ev(a, 'resume: sequence NAK sent'), 1);
  });

  it('drop: the peer hears nothing while A is suspended; after resume everything completes exactly once', async () => {
    const a = await side(A_IP);
    const b = await side(B_IP);
    await connectPair(a, b, FRAGILE, STURDY);
    await startTraffic(a, b);
    a.vm.verbs.suspendQp(a.qp.qpn, 'drop');
    const atSuspend = a.got.length;
    const sent = a.vm.addressCounters.sent;
    // Completions made before the suspension reach the guest's CQ; after that, none.
    await run(a, b, 30);
    const aDone = a.got.length;
    await run(a, b, SUSPENDED_MS);
    assert.ok(atSuspend < total, 'work was outstanding when A was suspended');
    assert.equal(a.vm.addressCounters.sent, sent, 'the suspended A sent B nothing at all');
    assert.equal(a.got.length, aDone, 'nothing completed at A while suspended');
    assert.equal(ev(b, 'RNR NAK received'), 0);
    assert.ok(ev(a, 'suspended: request dropped') > 0, "B's requests reached A and were dropped");
    a.vm.verbs.resumeQp(a.qp.qpn);
    await finish(a, b);
  });

  it('with the address released and bound again by a new socket (a destination VM built meanwhile)', async () => {
    const a = await side(A_IP);
    const b = await side(B_IP);
    await connectPair(a, b, FRAGILE, STURDY);
    await startTraffic(a, b);
    a.vm.verbs.suspendQp(a.qp.qpn, 'rnr-nak');
    // Another host builds the VM's provider and device before the address is free (R7).
    const destination = await Vm.open({ ip: A_IP, bindAddress: false, ramBytes: 8 << 20 });
    open.push(destination);
    assert.equal(destination.addressBound, false);
    await assert.rejects(destination.bindAddress(), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.AddressInUse);
    await a.vm.releaseAddress();
    assert.equal(a.vm.addressBound, false);
    await destination.bindAddress(); // bound on the first try
    await run(a, b, SUSPENDED_MS / 2);
    await destination.releaseAddress();
    // Packets B sent meanwhile went to the destination (which knows no such QP) or nowhere.
    await run(a, b, SUSPENDED_MS / 2);
    assert.equal(a.vm.addressCounters.sentWhileReleased, 0, 'nothing tried to send on the released link');
    await a.vm.bindAddress();
    a.vm.verbs.resumeQp(a.qp.qpn);
    await finish(a, b);
  });
});
