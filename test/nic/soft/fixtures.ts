// Two guests on one network: each a DeviceMemory with a RAM region, a SoftRoce over a Link of
// the loopback hub (optionally through a LossyLink), a PD, CQs and an MR over a buffer whose iova
// is separate from its guest-physical pages (R1). Helpers connect RC QPs and wait for completions.
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { DeviceMemory, type Gpa, gpa } from '../../../src/memory/index.js';
import type { Link } from '../../../src/nic/link.js';
import { QpAttr, QpState, QpType } from '../../../src/nic/qp-state.js';
import { SoftRoce, type SoftRoceOptions } from '../../../src/nic/soft/index.js';
import { ACCESS_ALL, Access, PathMtu, WcStatus } from '../../../src/nic/types.js';
import type { MrKeys, QpAttributes, WorkCompletion } from '../../../src/nic/verbs.js';
import { LoopbackHub } from '../../../src/net/loopback.js';
import { LossyLink, type LossyOptions } from '../../../src/net/lossy.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** Guest-physical start of each guest's RAM region. */
export const RAM_GPA = 0x100000;
export const RAM_BYTES = 8 * MiB;
/** The buffer MR: iova BUF_IOVA.. maps to guest pages starting at BUF_GPA. */
export const BUF_IOVA = 0x7f0000000000;
export const BUF_GPA = RAM_GPA + 64 * KiB;
export const BUF_BYTES = 4 * MiB;

export interface Guest {
  readonly ip: string;
  readonly dm: DeviceMemory;
  readonly link: Link;
  readonly dev: SoftRoce;
  readonly pd: number;
  readonly cq: number;
  readonly mr: MrKeys;
}

export interface GuestOptions extends SoftRoceOptions {
  lossy?: LossyOptions;
  access?: number;
  cqDepth?: number;
  /** Wrap the guest's link (to watch its packets). */
  wrap?: (link: Link) => Link;
}

export function guest(hub: LoopbackHub, ip: string, o: GuestOptions = {}): Guest {
  return guestOn(hub.attach(ip), o);
}

/** A guest on a link of its own (a real UDP socket, say), bound to the guest's address. */
export function guestOn(base: Link, o: GuestOptions = {}): Guest {
  const ip = base.localIp;
  const dm = DeviceMemory.create({ ramBytes: 16 * MiB, arenaBytes: 8 * MiB });
  dm.addRegion(RAM_GPA, RAM_BYTES);
  const lossy = o.lossy ? new LossyLink(base, o.lossy) : base;
  const link = o.wrap ? o.wrap(lossy) : lossy;
  const dev = new SoftRoce(dm, link, o);
  const pd = dev.allocPd();
  const cq = dev.createCq(o.cqDepth ?? 4096);
  const pages: Gpa[] = [];
  for (let off = 0; off < BUF_BYTES; off += 4096) pages.push(gpa(BUF_GPA + off));
  const mr = dev.registerPhysical(pd, { iova: BUF_IOVA, length: BUF_BYTES, access: o.access ?? (ACCESS_ALL & ~Access.ON_DEMAND), pageShift: 12, pages });
  return { ip, dm, link, dev, pd, cq, mr };
}

/** Guest bytes at buffer offset `off` (a view, no copy). */
export function bytesAt(g: Guest, off: number, len: number): Uint8Array {
  return g.dm.guest.slice(gpa(BUF_GPA + off), len);
}

export function fill(g: Guest, off: number, data: Uint8Array): void {
  g.dm.guest.write(gpa(BUF_GPA + off), data);
}

export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface RcOptions {
  mtu?: PathMtu;
  timeout?: number;
  retryCnt?: number;
  rnrRetry?: number;
  minRnrTimer?: number;
  sqPsn?: number;
  maxRdAtomic?: number;
  access?: number;
  maxSendWr?: number;
  qpns?: [number, number];
  sigAll?: boolean;
  /** Make b's QP receive from this SRQ. */
  srqB?: number;
}

/** Create one RC QP on each guest and bring both to RTS, connected to each other. */
export function connectRc(a: Guest, b: Guest, o: RcOptions = {}): [number, number] {
  const cap = { maxSendWr: o.maxSendWr ?? 1024, maxRecvWr: 1024, maxSendSge: 4, maxRecvSge: 4, maxInlineBytes: 128 };
  const qa = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: o.sigAll ?? true, qpn: o.qpns?.[0] });
  const qb = b.dev.createQp({ type: QpType.Rc, pd: b.pd, sendCq: b.cq, recvCq: b.cq, cap, sigAll: o.sigAll ?? true, qpn: o.qpns?.[1], srq: o.srqB });
  const psn = o.sqPsn ?? 0x1000;
  bringUp(a, qa, b.ip, qb, psn, psn + 7, o);
  bringUp(b, qb, a.ip, qa, psn + 7, psn, o);
  return [qa, qb];
}

function bringUp(g: Guest, qpn: number, peerIp: string, peerQpn: number, sqPsn: number, rqPsn: number, o: RcOptions): void {
  const A = QpAttr;
  const access = o.access ?? Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC;
  g.dev.modifyQp(qpn, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: access }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
  const rtr: Partial<QpAttributes> = {
    qpState: QpState.Rtr, pathMtu: o.mtu ?? PathMtu.Mtu1024, destQpNum: peerQpn, rqPsn: rqPsn & 0xffffff, maxDestRdAtomic: 16,
    minRnrTimer: o.minRnrTimer ?? 1, ahAttr: { dgid: peerIp, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 },
  };
  g.dev.modifyQp(qpn, rtr, A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER);
  const rts: Partial<QpAttributes> = {
    qpState: QpState.Rts, sqPsn: sqPsn & 0xffffff, timeout: o.timeout ?? 9, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7,
    maxRdAtomic: o.maxRdAtomic ?? 16,
  };
  g.dev.modifyQp(qpn, rts, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
}

/** Wait until `count` completions have been polled from the guest's CQ (or fail after a while). */
export async function completions(g: Guest, count: number, limitMs = 20_000, cq = g.cq): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = [];
  const deadline = Date.now() + limitMs;
  while (out.length < count) {
    out.push(...g.dev.pollCq(cq, count - out.length));
    if (out.length >= count) break;
    if (Date.now() > deadline) assert.fail(`${g.ip}: ${out.length} of ${count} completions after ${limitMs} ms: ${JSON.stringify(out.map(brief))}`);
    await tick();
  }
  return out;
}

/** Let the network and timers run for a while (no completion expected). */
export async function settle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export function brief(wc: WorkCompletion): string {
  return `${wc.wrId}:${WcStatus[wc.status]}`;
}

export function assertOk(wcs: WorkCompletion[]): void {
  for (const wc of wcs) assert.equal(wc.status, WcStatus.Success, `wr ${wc.wrId} completed with ${WcStatus[wc.status]}`);
}

/** Two guests on a fresh hub. */
export function pair(o: GuestOptions = {}, ob: GuestOptions = o): { hub: LoopbackHub; a: Guest; b: Guest } {
  const hub = new LoopbackHub();
  return { hub, a: guest(hub, '127.0.1.5', o), b: guest(hub, '127.0.1.6', ob) };
}

export async function closeAll(...gs: Guest[]): Promise<void> {
  for (const g of gs) {
    assert.equal(g.dev.counters.internalErrors, 0, `${g.ip} engine contained an error: ${String(g.dev.counters.lastInternalError)}`);
    g.dev.close();
    await g.link.close();
  }
}
