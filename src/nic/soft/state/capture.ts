// A live SoftRoce's state as plain data (the inverse of rebuild.ts). Everything is copied, so the
// result does not change when the provider does. Timers and queued event-loop work are not
// state: a SUSPENDED QP has none, and resume re-arms what it needs (R6).
import type { RemoteRegion } from '../../roce/transport-qp.js';
import type { RecvWqe, SendWqe } from '../../roce/wqe.js';
import { QpState } from '../../qp-state.js';
import type { SoftMr } from '../mr-table.js';
import type { SoftQp } from '../qp.js';
import type { SoftRoceParts } from './parts.js';
import type { SavedResponder, SoftQpState, SoftRoceState } from './types.js';

const byNumber = (a: number, b: number): number => a - b;

export function copyRecvWqe(w: RecvWqe): RecvWqe {
  return { wrId: w.wrId, sgList: w.sgList.map((s) => ({ ...s })), lengthBytes: w.lengthBytes };
}

export function copySendWqe(w: SendWqe): SendWqe {
  return { ...w, sgList: w.sgList.map((s) => ({ ...s })), inline: w.inline === null ? null : w.inline.slice(), ud: w.ud === null ? null : { ...w.ud } };
}

export function captureSoftRoce(p: SoftRoceParts): SoftRoceState {
  return {
    localIp: p.localIp,
    portMtu: p.portMtu,
    allocators: {
      pd: p.ids.pd.cursor, cq: p.ids.cq.cursor, qp: p.ids.qp.cursor, srq: p.ids.srq.cursor, ah: p.ids.ah.cursor,
      keys: p.mrs.keyState(),
    },
    gids: p.gids.entries().map(([index, ip]) => ({ index, ip })),
    pds: [...p.pds].sort(byNumber),
    mrs: p.mrs.list().map((mr) => ({ key: mr.key, pd: mr.pd, table: mr.table.toState() })),
    cqs: [...p.cqs.values()].map((cq) => ({ handle: cq.handle, depth: cq.depth, armed: cq.armed, overrun: cq.overrun, entries: cq.snapshot() })),
    srqs: [...p.srqs.values()].map((s) => ({ handle: s.handle, pd: s.pd, maxWr: s.maxWr, maxSge: s.maxSge, limit: s.limit, wqes: [...s.wqes].map(copyRecvWqe) })),
    ahs: [...p.ahs].map(([handle, ah]) => ({ handle, pd: ah.pd, av: { ...ah.av } })),
    qps: [...p.qps.values()].map(captureQp),
    counters: {
      dropped: [...p.counters.dropped], events: [...p.counters.events], internalErrors: p.counters.internalErrors,
      packetsSent: p.wireCounters.sent, packetsReceived: p.wireCounters.received,
    },
  };
}

export function captureQp(qp: SoftQp): SoftQpState {
  const t = qp.t;
  const o = qp.options;
  const r = t.resp;
  const held = r.held === null ? null : { packet: r.held.pkt.bytes.slice(r.held.pkt.off, r.held.pkt.off + r.held.pkt.lenBytes), fromIp: r.held.fromIp };
  const resp: SavedResponder = {
    psn: r.psn, msn: r.msn, nakSent: r.nakSent, lastOpcode: r.lastOpcode, recv: r.recv === null ? null : copyRecvWqe(r.recv), recvOffset: r.recv === null ? 0 : r.recvOffset,
    write: r.write === null ? null : { rkey: liveKey(r.write.region), va: r.write.va, remaining: r.write.remaining, lenBytes: r.write.lenBytes },
    resources: [...r.resources].map((res) => ({ ...res })), ackPending: r.ackPending, ackPsn: r.ackPsn, held, nakDue: r.nakDue,
  };
  return {
    qpn: qp.qpn, type: o.type, pd: o.pd, sendCq: qp.sendCq.handle, recvCq: qp.recvCq.handle, srq: qp.srq?.handle ?? 0,
    cap: { ...o.cap }, sigAll: o.sigAll, state: t.state,
    suspension: t.state === QpState.Suspended ? { resumeState: t.resumeState, drop: t.suspendDrop, ackPsn: t.suspendAckPsn } : null,
    attrs: { ...qp.query(), ahAttr: { ...qp.rec.ahAttr } },
    req: { ...t.req }, comp: { ...t.comp }, resp,
    sq: [...t.sq].map(copySendWqe), rq: [...qp.rq].map(copyRecvWqe),
  };
}

/** The key of the MR an RDMA WRITE in progress lands in, or null once it was deregistered. */
function liveKey(region: RemoteRegion | null): number | null {
  const mr = region as SoftMr | null;
  return mr !== null && mr.live ? mr.key : null;
}
