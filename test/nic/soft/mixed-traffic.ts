// Many QPs, many outstanding requests: on every RC QP between two guests, both directions keep
// `window` work requests in flight, cycling WRITE with immediate, SEND, READ and fetch-add, with
// receives kept posted, as the demo's workload does. Every completion is checked as it is polled
// (status, order, opcode, the fetched counter value, the bytes a READ brought back), and a hook
// runs between turns so a test can block the event loop the way a loaded host does.
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { PathMtu, SendFlags, WcOpcode, WcStatus, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr, WorkCompletion } from '../../../src/nic/verbs.js';
import { BUF_IOVA, type Guest, KiB, bytesAt, connectRc, fill, pattern } from './fixtures.js';

export interface MixedTrafficOptions {
  qps: number;
  /** Send work requests outstanding per QP and direction. */
  window: number;
  /** Operations each side posts on each QP. */
  ops: number;
  messageBytes: number;
  mtu: PathMtu;
  /** Local ACK timeout attribute (4.096 us * 2^timeout). */
  timeout: number;
  retryCnt: number;
  /** Called after every app turn with the completions so far (both sides). */
  between?: (completed: number) => void;
}

const RECV_DEPTH = 16;
const RECV_BASE = 1n << 32n;
const EXPECTED_OPCODE = [WcOpcode.RdmaWrite, WcOpcode.Send, WcOpcode.RdmaRead, WcOpcode.FetchAdd];

interface Side {
  g: Guest;
  peer: Guest;
  qpns: number[];
  posted: number[];
  completed: number[];
  recvPosted: number[];
  recvDone: number[];
}

/**
 * Buffer layout per guest (offsets in its MR): per QP a block of 4 regions of `window` slots
 * (WRITE/SEND sources, READ destinations, the peer's WRITE targets, SEND landing), then a READ
 * source region per QP, then one fetch-add counter per QP.
 */
function layout(o: MixedTrafficOptions) {
  const region = o.window * o.messageBytes;
  const block = 4 * region;
  const readSrc = (q: number) => o.qps * block + q * o.messageBytes;
  const counter = (q: number) => o.qps * (block + o.messageBytes) + q * 8;
  const faResult = (q: number, slot: number) => o.qps * (block + o.messageBytes) + o.qps * 8 + (q * o.window + slot) * 8;
  return { region, block, readSrc, counter, faResult };
}

/** Run the traffic to the end; resolves with the completions each side polled. */
export async function runMixedTraffic(a: Guest, b: Guest, o: MixedTrafficOptions): Promise<{ sends: number; recvs: number }> {
  const L = layout(o);
  const M = o.messageBytes;
  assert.ok(L.faResult(o.qps, 0) <= 4 * 1024 * KiB, 'the layout fits the fixture MR');
  const qpPairs = Array.from({ length: o.qps }, () => connectRc(a, b, { mtu: o.mtu, timeout: o.timeout, retryCnt: o.retryCnt, maxSendWr: o.window }));
  const side = (g: Guest, peer: Guest, i: 0 | 1): Side => ({
    g, peer, qpns: qpPairs.map((p) => p[i]), posted: new Array<number>(o.qps).fill(0), completed: new Array<number>(o.qps).fill(0),
    recvPosted: new Array<number>(o.qps).fill(0), recvDone: new Array<number>(o.qps).fill(0),
  });
  const sides = [side(a, b, 0), side(b, a, 1)];
  for (const [i, s] of sides.entries()) {
    for (let q = 0; q < o.qps; q++) fill(s.g, L.readSrc(q), pattern(M, 7000 + 100 * i + q));
    for (let q = 0; q < o.qps; q++) postRecvs(s, q);
  }

  function postRecvs(s: Side, q: number): void {
    const wrs = [];
    while (s.recvPosted[q] - s.recvDone[q] < RECV_DEPTH) {
      const r = s.recvPosted[q]++;
      const at = q * L.block + 3 * L.region + (r % o.window) * M;
      wrs.push({ wrId: RECV_BASE + BigInt(r), sgList: [{ addr: BUF_IOVA + at, length: M, lkey: s.g.mr.lkey }] });
    }
    if (wrs.length > 0) s.g.dev.postRecv(s.qpns[q], wrs);
  }

  function post(s: Side, q: number): void {
    const wrs: SendWr[] = [];
    while (s.posted[q] - s.completed[q] < o.window && s.posted[q] < o.ops) {
      const j = s.posted[q]++;
      const slot = j % o.window;
      const base = q * L.block;
      const flags = SendFlags.SIGNALED;
      const wrId = BigInt(j);
      const local = (at: number, length = M) => [{ addr: BUF_IOVA + at, length, lkey: s.g.mr.lkey }];
      const rkey = s.peer.mr.rkey;
      switch (j % 4) {
        case 0:
          wrs.push({ wrId, opcode: WrOpcode.RdmaWriteWithImm, flags, immData: j, sgList: local(base + slot * M), remoteAddr: BUF_IOVA + base + 2 * L.region + slot * M, rkey });
          break;
        case 1:
          wrs.push({ wrId, opcode: WrOpcode.Send, flags, sgList: local(base + slot * M) });
          break;
        case 2:
          wrs.push({ wrId, opcode: WrOpcode.RdmaRead, flags, sgList: local(base + L.region + slot * M), remoteAddr: BUF_IOVA + L.readSrc(q), rkey });
          break;
        default:
          wrs.push({ wrId, opcode: WrOpcode.AtomicFetchAndAdd, flags, compareAdd: 1n, sgList: local(L.faResult(q, slot), 8), remoteAddr: BUF_IOVA + L.counter(q), rkey });
      }
    }
    if (wrs.length > 0) s.g.dev.postSend(s.qpns[q], wrs);
  }

  function check(s: Side, i: number, wc: WorkCompletion): void {
    const q = s.qpns.indexOf(wc.qpNum);
    assert.ok(q >= 0, `completion for QP ${wc.qpNum}`);
    assert.equal(WcStatus[wc.status], 'Success', `side ${i} QP ${q} wr ${wc.wrId}`);
    if (wc.wrId >= RECV_BASE) {
      assert.equal(wc.wrId, RECV_BASE + BigInt(s.recvDone[q]), `side ${i} QP ${q}: receives complete in order`);
      s.recvDone[q]++;
      return;
    }
    const j = s.completed[q]++;
    assert.equal(wc.wrId, BigInt(j), `side ${i} QP ${q}: sends complete in order`);
    assert.equal(wc.opcode, EXPECTED_OPCODE[j % 4], `side ${i} QP ${q} wr ${j} opcode`);
    const slot = j % o.window;
    if (j % 4 === 2) {
      const got = bytesAt(s.g, q * L.block + L.region + slot * M, M);
      assert.ok(Buffer.from(got).equals(Buffer.from(pattern(M, 7000 + 100 * (1 - i) + q))), `side ${i} QP ${q} READ ${j} bytes`);
    } else if (j % 4 === 3) {
      // Each fetch-add executed once: the k-th one on this connection saw the counter at k.
      const old = new DataView(bytesAt(s.g, L.faResult(q, slot), 8).slice().buffer).getBigUint64(0, true);
      assert.equal(old, BigInt((j - 3) / 4), `side ${i} QP ${q} fetch-add ${j} result`);
    }
  }

  let polled = 0;
  let sends = 0;
  let recvs = 0;
  const done = () => sides.every((s) => s.completed.every((c) => c >= o.ops));
  while (!done()) {
    for (const [i, s] of sides.entries()) {
      const wcs = s.g.dev.pollCq(s.g.cq, 256);
      const touched = new Set<number>();
      for (const wc of wcs) {
        check(s, i, wc);
        if (wc.wrId >= RECV_BASE) recvs++;
        else sends++;
        touched.add(s.qpns.indexOf(wc.qpNum));
      }
      polled += wcs.length;
      for (const q of touched) postRecvs(s, q);
      for (let q = 0; q < o.qps; q++) post(s, q);
    }
    o.between?.(polled);
    await tick();
  }
  return { sends, recvs };
}

/** Block the event loop for `ms`, as a descheduled or garbage-collecting host process does. */
export function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin: nothing else in this process runs meanwhile
  }
}
