// Restoring a SoftRoce from a state buffer (R9): decode, check everything against itself and
// this provider (check.ts), build the only parts that can run out of room (MR page tables in the
// device arena), and only then put every object in place. A refused buffer leaves the provider
// as it was; QPs that were sending come back SUSPENDED, to be resumed once the address is here.
import type { PageTable } from '../../mr/page-table.js';
import { MrError } from '../../mr/errors.js';
import { QpState, canSuspend } from '../../qp-state.js';
import { RocePacket, parsePacket } from '../../roce/packet.js';
import { TransportQp, type ResponderResource } from '../../roce/transport-qp.js';
import { Fifo } from '../../../util/fifo.js';
import { VerbsError } from '../../errors.js';
import type { ProviderStateSummary } from '../../verbs.js';
import { StateError, StateErrorCode, inconsistent } from '../../../state/index.js';
import type { MrTable } from '../mr-table.js';
import { transportAttrsOf } from '../qp-attrs.js';
import type { SoftQp } from '../qp.js';
import { copyRecvWqe, copySendWqe } from './capture.js';
import { checkSoftRoceState } from './check.js';
import { decodeSoftRoceState } from './codec.js';
import type { SoftRoceParts } from './parts.js';
import type { SoftQpState, SoftRoceState } from './types.js';

/** Decode and check a state for this provider, which must hold no objects. */
function checked(p: SoftRoceParts, buf: Uint8Array): SoftRoceState {
  const cached = inspected.get(buf);
  if (cached !== undefined && cached.dm === p.dm && cached.localIp === p.localIp && cached.limits === p.limits && cached.portMtu === p.portMtu &&
    cached.maxKeyIndex === p.mrs.maxKeyIndex && sameBytes(cached.bytes, buf)) {
    assertEmpty(p);
    return cached.state;
  }
  // Decoding first: a malformed buffer is named as such whatever the provider holds.
  const s = decodeSoftRoceState(buf);
  assertEmpty(p);
  checkSoftRoceState(s, { dm: p.dm, localIp: p.localIp, limits: p.limits, portMtu: p.portMtu, maxKeyIndex: p.mrs.maxKeyIndex });
  return s;
}

function assertEmpty(p: SoftRoceParts): void {
  const objects = p.pds.size + p.cqs.size + p.qps.size + p.srqs.size + p.ahs.size + p.mrs.size;
  if (objects > 0 || p.gids.size > 1) throw new StateError(StateErrorCode.NotEmpty, `the provider holds ${objects} objects and ${p.gids.size} GIDs`);
}

/**
 * A state inspectState() decoded and checked, kept with a copy of its bytes: the device inspects
 * the provider's state before it builds anything and restores it right after, and the switchover
 * waits for both. restoreState() takes the checked state from here only for the same buffer with
 * the same bytes, on a provider with the same memory, address and limits (and still empty), so
 * what it installs has passed exactly the checks it would run itself.
 */
interface Inspected {
  bytes: Uint8Array;
  state: SoftRoceState;
  dm: SoftRoceParts['dm'];
  localIp: string;
  limits: SoftRoceParts['limits'];
  portMtu: SoftRoceParts['portMtu'];
  maxKeyIndex: number;
}
const inspected = new WeakMap<Uint8Array, Inspected>();

/** Byte equality by memcmp: a JS loop over a 100 KB state runs interpreted, at the switchover. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export function inspectSoftRoce(p: SoftRoceParts, buf: Uint8Array): ProviderStateSummary {
  const s = checked(p, buf);
  inspected.set(buf, { bytes: buf.slice(), state: s, dm: p.dm, localIp: p.localIp, limits: p.limits, portMtu: p.portMtu, maxKeyIndex: p.mrs.maxKeyIndex });
  return {
    pds: [...s.pds], cqs: s.cqs.map((c) => c.handle), srqs: s.srqs.map((x) => x.handle), ahs: s.ahs.map((x) => x.handle),
    qps: s.qps.map((q) => ({ qpn: q.qpn, type: q.type })), mrKeys: s.mrs.map((m) => m.key), gids: s.gids.map((g) => ({ ...g })),
  };
}

export function restoreSoftRoce(p: SoftRoceParts, buf: Uint8Array): void {
  const s = checked(p, buf);
  inspected.delete(buf);
  const tables: PageTable[] = [];
  try {
    for (const mr of s.mrs) tables.push(p.mrs.buildTable(mr.table));
  } catch (err) {
    for (const t of tables) t.dispose();
    const full = err instanceof VerbsError && err.code === 'ENOMEM';
    throw new StateError(full ? StateErrorCode.NoResources : StateErrorCode.Incompatible, `MR page tables: ${(err as Error).message}`);
  }
  const before = { cursors: Object.fromEntries(Object.entries(p.ids).map(([k, id]) => [k, id.cursor])), keys: p.mrs.keyState() };
  try {
    install(p, s, tables);
  } catch (err) {
    // check.ts let through something the provider refuses: a bug, but still no half-built device.
    wipe(p, before, tables);
    if (err instanceof StateError) throw err;
    throw inconsistent(`restore failed after checking: ${(err as Error).message}`);
  }
}

function install(p: SoftRoceParts, s: SoftRoceState, tables: readonly PageTable[]): void {
  const a = s.allocators;
  const reserve = (ids: (typeof p.ids)[keyof typeof p.ids], list: readonly number[], at: number) => {
    for (const h of list) ids.reserve(h);
    if (ids.cursor !== at) ids.seek(at);
  };
  reserve(p.ids.pd, s.pds, a.pd);
  reserve(p.ids.cq, s.cqs.map((c) => c.handle), a.cq);
  reserve(p.ids.srq, s.srqs.map((x) => x.handle), a.srq);
  reserve(p.ids.ah, s.ahs.map((x) => x.handle), a.ah);
  reserve(p.ids.qp, s.qps.map((q) => q.qpn), a.qp);
  for (const g of s.gids) if (g.index !== 0) p.gids.add(g.index, g.ip);
  for (const pd of s.pds) p.pds.add(pd);
  p.mrs.install(a.keys, s.mrs.map((mr, i) => ({ key: mr.key, pd: mr.pd, table: tables[i] })));
  for (const c of s.cqs) {
    const cq = p.newCq(c.handle, c.depth);
    cq.armed = c.armed;
    cq.overrun = c.overrun;
    cq.load(c.entries);
    p.cqs.set(c.handle, cq);
  }
  for (const x of s.srqs) {
    const srq = p.newSrq(x.handle, x.pd, x.maxWr, x.maxSge, x.limit);
    for (const w of x.wqes) srq.wqes.push(copyRecvWqe(w));
    p.srqs.set(x.handle, srq);
  }
  for (const ah of s.ahs) p.ahs.set(ah.handle, { pd: ah.pd, av: { ...ah.av } });
  for (const q of s.qps) {
    const sendCq = p.cqs.get(q.sendCq)!;
    const recvCq = p.cqs.get(q.recvCq)!;
    const srq = q.srq === 0 ? null : p.srqs.get(q.srq)!;
    const qp = p.newQp(q.qpn, { type: q.type, pd: q.pd, sendCq: q.sendCq, recvCq: q.recvCq, srq: q.srq === 0 ? undefined : q.srq, cap: { ...q.cap }, sigAll: q.sigAll, qpn: q.qpn }, sendCq, recvCq, srq);
    loadQp(qp, q, p.mrs);
    sendCq.users++;
    recvCq.users++;
    if (srq !== null) srq.users++;
    p.qps.set(q.qpn, qp);
  }
  const c = s.counters;
  p.counters.dropped = new Map(c.dropped);
  p.counters.events = new Map(c.events);
  p.counters.internalErrors = c.internalErrors;
  p.wireCounters.sent = c.packetsSent;
  p.wireCounters.received = c.packetsReceived;
}

/** Put the QP's saved state into a new SoftQp; QPs that were sending come back SUSPENDED (R6). */
export function loadQp(qp: SoftQp, q: SoftQpState, mrs: MrTable): void {
  const t = qp.t;
  Object.assign(qp.rec, { ...q.attrs, ahAttr: { ...q.attrs.ahAttr } });
  Object.assign(t.attrs, transportAttrsOf(qp.rec));
  if (q.suspension !== null) {
    t.resumeState = q.suspension.resumeState;
    t.suspendDrop = q.suspension.drop;
    t.suspendAckPsn = q.suspension.ackPsn;
  } else {
    t.resumeState = q.state;
    t.suspendDrop = false;
    t.suspendAckPsn = -1;
  }
  t.state = q.suspension !== null || canSuspend(q.state) ? QpState.Suspended : q.state;
  t.req = { ...q.req };
  t.comp = { ...q.comp };
  const r = q.resp;
  const resources = new Fifo<ResponderResource>(4);
  for (const res of r.resources) resources.push({ ...res });
  const fresh = TransportQp.freshResponder(r.psn);
  t.resp = {
    ...fresh, msn: r.msn, nakSent: r.nakSent, lastOpcode: r.lastOpcode, recv: r.recv === null ? null : copyRecvWqe(r.recv), recvOffset: r.recvOffset,
    write: r.write === null ? null : { region: r.write.rkey === null ? null : mrs.get(r.write.rkey), va: r.write.va, remaining: r.write.remaining, lenBytes: r.write.lenBytes },
    resources, ackPending: r.ackPending, ackPsn: r.ackPsn, nakDue: r.nakDue,
    held: r.held === null ? null : { pkt: parsePacket(r.held.packet.slice(), 0, r.held.packet.length, null) as RocePacket, fromIp: r.held.fromIp },
  };
  for (const w of q.sq) t.sq.push(copySendWqe(w));
  for (const w of q.rq) qp.rq.push(copyRecvWqe(w));
}

/** Undo a partial install: back to an empty provider with its allocators as they were. */
function wipe(p: SoftRoceParts, before: { cursors: Record<string, number>; keys: ReturnType<MrTable['keyState']> }, tables: readonly PageTable[]): void {
  const quietly = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof VerbsError || err instanceof MrError)) throw err;
    }
  };
  for (const qp of p.qps.values()) qp.destroyed = true;
  const release = (ids: (typeof p.ids)[keyof typeof p.ids], list: Iterable<number>) => {
    for (const h of list) quietly(() => ids.release(h));
  };
  release(p.ids.qp, p.qps.keys());
  release(p.ids.cq, p.cqs.keys());
  release(p.ids.srq, p.srqs.keys());
  release(p.ids.ah, p.ahs.keys());
  release(p.ids.pd, p.pds);
  for (const [k, id] of Object.entries(p.ids)) quietly(() => id.seek(before.cursors[k]));
  for (const mr of p.mrs.list()) quietly(() => p.mrs.deregister(mr.key));
  for (const t of tables) t.dispose();
  quietly(() => p.mrs.restoreKeys(before.keys));
  for (const [index] of p.gids.entries()) if (index !== 0) quietly(() => p.gids.delete(index));
  p.qps.clear();
  p.cqs.clear();
  p.srqs.clear();
  p.ahs.clear();
  p.pds.clear();
}
