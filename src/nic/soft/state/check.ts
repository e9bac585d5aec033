// Everything a provider state must satisfy before anything is built from it: every number in
// range for this destination's limits, every reference between objects resolvable, every page
// of every MR inside the destination's guest RAM, the address it belongs to this link's. Pure:
// it only reads the state and the destination, and throws StateError on the first problem.
import { MR_ACCESS_ALL, MR_LOCAL_WRITE, MR_REMOTE_ATOMIC, MR_REMOTE_WRITE } from '../../../../assembly/mr-abi.js';
import type { DeviceMemory } from '../../../memory/device-memory.js';
import type { PageTableState } from '../../mr/page-table-state.js';
import { QpState, QpType } from '../../qp-state.js';
import { WqeState } from '../../roce/wqe.js';
import { Access, PathMtu, WrOpcode, mtuBytes } from '../../types.js';
import type { AddressVector, DeviceLimits, Sge } from '../../verbs.js';
import { MAX_QPN, MIN_QPN } from '../options.js';
import { badRecord, incompatible, inconsistent } from '../../../state/index.js';
import type { SoftQpState, SoftRoceState } from './types.js';

/** The destination a state is checked against. */
export interface RestoreTarget {
  readonly dm: DeviceMemory;
  readonly localIp: string;
  readonly limits: DeviceLimits;
  readonly portMtu: PathMtu;
  readonly maxKeyIndex: number;
}

const REMOTE_RIGHTS = Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC | Access.LOCAL_WRITE;
const RC_OPS = new Set([WrOpcode.Send, WrOpcode.SendWithImm, WrOpcode.RdmaWrite, WrOpcode.RdmaWriteWithImm, WrOpcode.RdmaRead, WrOpcode.AtomicCmpAndSwp, WrOpcode.AtomicFetchAndAdd]);
const UD_OPS = new Set([WrOpcode.Send, WrOpcode.SendWithImm]);

/** Handles must be distinct and in [min, max] (an allocator's range). */
function handles(what: string, list: readonly number[], min: number, max: number, limit: number): Set<number> {
  if (list.length > limit) throw incompatible(`${list.length} ${what}s exceed this device's ${limit}`);
  const seen = new Set<number>();
  for (const h of list) {
    if (h < min || h > max) throw incompatible(`${what} ${h} is outside [${min}, ${max}]`);
    if (seen.has(h)) throw inconsistent(`${what} ${h} appears twice`);
    seen.add(h);
  }
  return seen;
}

function cursor(what: string, v: number, min: number, max: number): void {
  if (v < min || v > Math.max(min, max)) throw incompatible(`${what} cursor ${v} is outside [${min}, ${max}]`);
}

function within(what: string, v: number, max: number, min = 0): void {
  if (v < min || v > max) throw incompatible(`${what} ${v} is outside [${min}, ${max}]`);
}

export function checkSoftRoceState(s: SoftRoceState, t: RestoreTarget): void {
  const L = t.limits;
  if (s.localIp !== t.localIp) throw incompatible(`state of ${s.localIp} restored on a link bound to ${t.localIp} (the address moves with the VM)`);
  const a = s.allocators;
  cursor('PD', a.pd, 1, L.maxPd);
  cursor('CQ', a.cq, 1, L.maxCq);
  cursor('QPN', a.qp, MIN_QPN, MAX_QPN);
  cursor('SRQ', a.srq, 1, L.maxSrq);
  cursor('AH', a.ah, 1, L.maxAh);
  cursor('memory key', a.keys.cursor, 1, t.maxKeyIndex);
  const tags = new Map<number, number>();
  for (const [index, tag] of a.keys.tags) {
    if (index < 1 || index > t.maxKeyIndex) throw incompatible(`key index ${index} is outside [1, ${t.maxKeyIndex}]`);
    if (tags.has(index)) throw inconsistent(`key index ${index} has two tags`);
    tags.set(index, tag);
  }

  const gids = new Map<number, string>();
  for (const g of s.gids) {
    if (g.index >= L.maxGid) throw incompatible(`GID index ${g.index} is outside this device's ${L.maxGid}`);
    if (gids.has(g.index)) throw inconsistent(`GID index ${g.index} appears twice`);
    gids.set(g.index, g.ip);
  }
  if (gids.get(0) !== s.localIp) throw inconsistent(`GID 0 is ${gids.get(0) ?? 'missing'}, not the provider's address ${s.localIp}`);
  const checkAv = (av: AddressVector, what: string): void => {
    const sgid = gids.get(av.sgidIndex);
    if (sgid === undefined) throw inconsistent(`${what}: sgid index ${av.sgidIndex} names no GID`);
    if (sgid !== s.localIp) throw inconsistent(`${what}: sgid ${sgid} is not this function's address ${s.localIp}`);
  };

  const pds = handles('PD', s.pds, 1, L.maxPd, L.maxPd);
  const pd = (v: number, what: string): void => {
    if (!pds.has(v)) throw inconsistent(`${what} is in PD ${v}, which the state does not hold`);
  };

  handles('MR key index', s.mrs.map((m) => m.key >>> 8), 1, t.maxKeyIndex, L.maxMr);
  const mrKeys = new Set<number>();
  for (const mr of s.mrs) {
    const what = `MR 0x${mr.key.toString(16)}`;
    if (tags.get(mr.key >>> 8) !== (mr.key & 0xff)) throw inconsistent(`${what}: its tag is not the allocator's for index ${mr.key >>> 8}`);
    pd(mr.pd, what);
    checkTable(t.dm, mr.table, L, what);
    mrKeys.add(mr.key);
  }

  const cqs = handles('CQ', s.cqs.map((c) => c.handle), 1, L.maxCq, L.maxCq);
  for (const cq of s.cqs) within(`CQ ${cq.handle} depth`, cq.depth, L.maxCqe, 1);

  const srqs = new Map(s.srqs.map((x) => [x.handle, x]));
  handles('SRQ', s.srqs.map((x) => x.handle), 1, L.maxSrq, L.maxSrq);
  for (const x of s.srqs) {
    const what = `SRQ ${x.handle}`;
    pd(x.pd, what);
    within(`${what} size`, x.maxWr, L.maxSrqWr, 1);
    within(`${what} SGEs`, x.maxSge, L.maxSge, 1);
    within(`${what} limit`, x.limit, x.maxWr);
    if (x.wqes.length > x.maxWr) throw inconsistent(`${what} holds ${x.wqes.length} WQEs, more than its ${x.maxWr}`);
    for (const w of x.wqes) sges(w.sgList, x.maxSge, what);
  }

  handles('AH', s.ahs.map((x) => x.handle), 1, L.maxAh, L.maxAh);
  for (const ah of s.ahs) {
    pd(ah.pd, `AH ${ah.handle}`);
    checkAv(ah.av, `AH ${ah.handle}`);
  }

  handles('QP', s.qps.map((q) => q.qpn), MIN_QPN, MAX_QPN, L.maxQp);
  for (const q of s.qps) {
    const what = `QP ${q.qpn}`;
    pd(q.pd, what);
    if (!cqs.has(q.sendCq) || !cqs.has(q.recvCq)) throw inconsistent(`${what} completes into CQ ${q.sendCq}/${q.recvCq}, which the state does not hold`);
    if (q.srq !== 0 && !srqs.has(q.srq)) throw inconsistent(`${what} receives from SRQ ${q.srq}, which the state does not hold`);
    checkAv(q.attrs.ahAttr, what);
    checkQp(q, L, t.portMtu, mrKeys, what, q.srq === 0 ? q.cap.maxRecvSge : (srqs.get(q.srq)?.maxSge ?? 0));
  }
}

function sges(list: readonly Sge[], max: number, what: string): void {
  if (list.length > max) throw inconsistent(`${what}: ${list.length} SGEs exceed its ${max}`);
}

export function checkQp(q: SoftQpState, L: DeviceLimits, portMtu: PathMtu, mrKeys: ReadonlySet<number>, what: string, recvSge: number): void {
  within(`${what} max send WRs`, q.cap.maxSendWr, L.maxQpWr);
  within(`${what} max receive WRs`, q.cap.maxRecvWr, L.maxQpWr);
  within(`${what} max send SGEs`, q.cap.maxSendSge, L.maxSge);
  within(`${what} max receive SGEs`, q.cap.maxRecvSge, L.maxSge);
  within(`${what} max inline bytes`, q.cap.maxInlineBytes, L.maxInlineBytes);
  const a = q.attrs;
  if (a.pathMtu > portMtu) throw incompatible(`${what}: path MTU ${mtuBytes(a.pathMtu)} exceeds this port's ${mtuBytes(portMtu)}`);
  if ((a.qpAccessFlags & ~REMOTE_RIGHTS) !== 0) throw badRecord(`${what}: access flags 0x${a.qpAccessFlags.toString(16)} unknown`);
  within(`${what} max_rd_atomic`, a.maxRdAtomic, L.maxQpInitRdAtom);
  within(`${what} max_dest_rd_atomic`, a.maxDestRdAtomic, L.maxQpRdAtom);
  if (q.sq.length > q.cap.maxSendWr) throw inconsistent(`${what}: ${q.sq.length} send WQEs exceed its ${q.cap.maxSendWr}`);
  if (q.rq.length > q.cap.maxRecvWr) throw inconsistent(`${what}: ${q.rq.length} receive WQEs exceed its ${q.cap.maxRecvWr}`);
  if (q.srq !== 0 && q.rq.length > 0) throw inconsistent(`${what} receives from an SRQ but holds receive WQEs`);
  if (q.state === QpState.Reset && (q.sq.length > 0 || q.rq.length > 0)) throw inconsistent(`${what} in RESET holds WQEs`);
  const ops = q.type === QpType.Ud ? UD_OPS : RC_OPS;
  q.sq.forEach((w, i) => {
    const wqe = `${what} send WQE ${i}`;
    if (!ops.has(w.opcode)) throw inconsistent(`${wqe}: opcode ${WrOpcode[w.opcode]} on a ${QpType[q.type]} QP`);
    sges(w.sgList, q.cap.maxSendSge, wqe);
    if (w.inline !== null && w.inline.length > q.cap.maxInlineBytes) throw inconsistent(`${wqe}: ${w.inline.length} inline bytes exceed its ${q.cap.maxInlineBytes}`);
    if ((w.ud !== null) !== (q.type === QpType.Ud)) throw inconsistent(`${wqe}: a UD destination ${w.ud === null ? 'missing' : 'on an RC QP'}`);
    // Before the requester's position every WQE was wholly sent; a fresh one has sent nothing.
    if (i < q.req.next && w.state !== WqeState.Pending && w.state !== WqeState.Done) throw inconsistent(`${wqe} is before the requester yet ${WqeState[w.state]}`);
    if (w.state === WqeState.Posted && w.nextPacket !== 0) throw inconsistent(`${wqe} is POSTED with packets sent`);
  });
  for (const w of q.rq) sges(w.sgList, q.cap.maxRecvSge, `${what} receive WQE`);
  const r = q.resp;
  if (r.recv !== null) sges(r.recv.sgList, recvSge, `${what} receive in progress`);
  if (r.write !== null && r.write.rkey !== null && !mrKeys.has(r.write.rkey)) throw inconsistent(`${what}: the RDMA WRITE in progress names MR 0x${r.write.rkey.toString(16)}, which the state does not hold`);
  if (r.resources.length > Math.max(1, a.maxDestRdAtomic)) throw inconsistent(`${what}: ${r.resources.length} responder resources exceed max_dest_rd_atomic ${a.maxDestRdAtomic}`);
}

/** What PageTable.fromState and SoftRoce's registration would refuse, checked without building. */
function checkTable(dm: DeviceMemory, t: PageTableState, L: DeviceLimits, what: string): void {
  const access = t.access;
  if ((access & ~MR_ACCESS_ALL) !== 0) throw badRecord(`${what}: access 0x${access.toString(16)} has unknown bits`);
  if ((access & (MR_REMOTE_WRITE | MR_REMOTE_ATOMIC)) !== 0 && (access & MR_LOCAL_WRITE) === 0) throw badRecord(`${what}: remote write or atomic without local write`);
  if (t.onDemand) throw incompatible(`${what}: on-demand paging is not supported by SoftRoce`);
  if (t.absent.length > 0) throw inconsistent(`${what}: absent pages in a table that is not on demand`);
  const pageBytes = 2 ** t.pageShift;
  if (t.kind === 'all-memory') {
    if (t.sizeBytes !== null && (t.sizeBytes <= 0 || Math.ceil(t.sizeBytes / pageBytes) >= 2 ** 32)) throw badRecord(`${what}: all-memory size ${t.sizeBytes}`);
    return;
  }
  if (t.length <= 0 || !Number.isSafeInteger(t.iova + t.length)) throw badRecord(`${what}: iova ${t.iova} and length ${t.length}`);
  if (t.length > L.maxMrBytes) throw incompatible(`${what}: length ${t.length} exceeds this device's ${L.maxMrBytes}`);
  const want = Math.ceil(((t.iova % pageBytes) + t.length) / pageBytes);
  if (t.pages.length !== want) throw inconsistent(`${what}: ${t.pages.length} pages where its range needs ${want}`);
  const regions = dm.guest.regions;
  t.pages.forEach((page, i) => {
    if (page % pageBytes !== 0 || !Number.isSafeInteger(page + pageBytes)) throw badRecord(`${what}: page ${i} at ${page} is not ${pageBytes}-byte aligned`);
    if (regions.lookup(page, pageBytes) >= 0) return;
    // A large page may span regions; each 4 KiB of it must be guest RAM.
    for (let g = page; g < page + pageBytes; g += 4096) {
      if (regions.lookup(g, 4096) < 0) throw incompatible(`${what}: page ${i} at 0x${page.toString(16)} is not guest RAM here`);
    }
  });
}
