// Device records (docs/state-format.md, "Device records"): the transport, allocators, GIDs and
// the device's objects, each with the provider numbers behind its guest-visible handle.
import { gpa } from '../../memory/gpa.js';
import { QpState, QpType } from '../../nic/qp-state.js';
import { ipv4, ipv4Text } from '../../nic/roce/icrc.js';
import type { PhysicalRegistration } from '../../nic/verbs.js';
import { type FieldReader, type FieldWriter, badRecord, cachedPart } from '../../state/index.js';
import { CQE_BYTES, EventType } from '../abi.js';
import { CONFIG_BYTES } from '../config.js';
import type { MrObj, QpKind } from '../core.js';
import { readWorkQueue, writeWorkQueue } from './queue-codec.js';
import type { DeviceStateData, SavedCq, SavedQp, SavedSrq } from './types.js';

const MAX_PAGES = 1 << 24;
const KINDS: readonly QpKind[] = ['rc', 'ud', 'gsi'];
const EVENT_TYPES = Object.values(EventType).filter((v): v is number => typeof v === 'number');

export type TransportData = Pick<DeviceStateData, 'deviceFeatures' | 'driverFeatures' | 'status' | 'resetReason' | 'config' | 'numQueues'>;

export function writeTransport(w: FieldWriter, t: TransportData): void {
  w.u64(t.deviceFeatures).u64(t.driverFeatures).u8(t.status).bool(t.resetReason !== null).str(t.resetReason ?? '').raw(t.config).u32(t.numQueues);
}

export function readTransport(r: FieldReader): TransportData {
  const deviceFeatures = r.u64('device features');
  const driverFeatures = r.u64('driver features');
  const status = r.u8('device status');
  const hasReason = r.bool('has reset reason');
  const reason = r.str('reset reason', 4096);
  return { deviceFeatures, driverFeatures, status, resetReason: hasReason ? reason : null, config: r.raw('config space', CONFIG_BYTES), numQueues: r.u32('queue count') };
}

export function writeAllocators(w: FieldWriter, a: DeviceStateData['allocators']): void {
  w.u32(a.pd).u32(a.mr).u32(a.ah).u64(a.seq);
}

export function readAllocators(r: FieldReader): DeviceStateData['allocators'] {
  return { pd: r.u32('PD cursor'), mr: r.u32('MR cursor'), ah: r.u32('AH cursor'), seq: r.range('sequence cursor', r.u64n('sequence cursor'), 1, Number.MAX_SAFE_INTEGER) };
}

export function writeGid(w: FieldWriter, g: { index: number; ip: string }): void {
  w.u32(g.index).u32(ipv4(g.ip));
}

export function readGid(r: FieldReader): { index: number; ip: string } {
  return { index: r.u32('GID index'), ip: ipv4Text(r.u32('GID')) };
}

export function writeMr(w: FieldWriter, mr: MrObj): void {
  w.u32(mr.handle).u32(mr.pd).u32(mr.lkey).u32(mr.rkey).u8(mr.kind === 'dma' ? 1 : 2).u32(mr.access).bool(mr.invalidatable);
  if (mr.reg === 'all-memory') return;
  const g = mr.reg;
  // A registration is replaced, never changed, when the MR is reregistered (cmd-mr.ts).
  cachedPart(w, g, (x) => {
    x.u64(g.iova).u64(g.length).u32(g.access).u8(g.pageShift).bool(g.invalidatable === true);
    x.list(g.pages, (y, p) => y.u64(p));
  });
}

export function readMr(r: FieldReader): MrObj {
  const handle = r.u32('handle');
  const pd = r.u32('PD');
  const lkey = r.u32('lkey');
  const rkey = r.u32('rkey');
  const kind = r.range('kind', r.u8('kind'), 1, 2) === 1 ? 'dma' : 'phys';
  const access = r.u32('access');
  const invalidatable = r.bool('invalidatable');
  let reg: PhysicalRegistration | 'all-memory' = 'all-memory';
  if (kind === 'phys') {
    const iova = r.u64n('iova');
    const length = r.u64n('length');
    const regAccess = r.u32('registered access');
    const pageShift = r.oneOf('page shift', r.u8('page shift'), [12, 21] as const);
    const inv = r.bool('registered invalidatable');
    const pages = r.list('pages', MAX_PAGES, 8, (x) => gpa(x.u64n('page')));
    reg = { iova, length, access: regAccess, pageShift, pages, invalidatable: inv };
  }
  return { handle, pd, lkey, rkey, kind, access, invalidatable, reg };
}

export function writeAh(w: FieldWriter, ah: DeviceStateData['ahs'][number]): void {
  w.u32(ah.handle).u32(ah.pd).u32(ah.verbsAh).u32(ah.sgidIndex);
}

export function readAh(r: FieldReader): DeviceStateData['ahs'][number] {
  return { handle: r.u32('handle'), pd: r.u32('PD'), verbsAh: r.u32('provider AH'), sgidIndex: r.u32('sgid index') };
}

export function writeCq(w: FieldWriter, c: SavedCq): void {
  w.u32(c.index).u32(c.depth).u32(c.verbsCq).u8(c.armed).bool(c.error).u32(c.cqesWritten >>> 0).bool(c.notifyDue);
  w.list(c.backlog, (x, b) => x.raw(b.bytes).bool(b.solicitedOrError));
}

export function readCq(r: FieldReader): SavedCq {
  const index = r.u32('index');
  const depth = r.u32('depth');
  const verbsCq = r.u32('provider CQ');
  const armed = r.oneOf('arm', r.u8('arm'), [0, 1, 2]);
  const error = r.bool('error');
  const cqesWritten = r.u32('CQEs written');
  const notifyDue = r.bool('notify due');
  const backlog = r.list('backlog', 1 << 20, CQE_BYTES + 1, (x) => ({ bytes: x.raw('CQE', CQE_BYTES), solicitedOrError: x.bool('solicited or error') }));
  if (backlog.length > depth) throw badRecord(`${r.where}: ${backlog.length} CQEs wait in a CQ of ${depth}`);
  return { index, depth, verbsCq, armed, error, cqesWritten, notifyDue, backlog };
}

export function writeQp(w: FieldWriter, q: SavedQp): void {
  w.u32(q.qpn).u32(q.index).u8(KINDS.indexOf(q.kind)).u8(q.verbsType).u32(q.pd).u32(q.sendCq).u32(q.recvCq).u32(q.srq);
  w.u32(q.cap.maxSendWr).u32(q.cap.maxRecvWr).u32(q.cap.maxSendSge).u32(q.cap.maxRecvSge).u32(q.cap.maxInlineData).bool(q.sigAll);
  w.u8(q.state).i32(q.sgidIndex).bool(q.deviceSqe).bool(q.drainNotify).u32(q.qkey >>> 0).u32(q.flushVendor);
  writeWorkQueue(w, q.sq);
  writeWorkQueue(w, q.rq);
}

export function readQp(r: FieldReader): SavedQp {
  const qpn = r.range('QPN', r.u32('QPN'), 0, 0xffffff);
  const index = r.u32('index');
  const kind = KINDS[r.range('kind', r.u8('kind'), 0, 2)];
  const verbsType = r.oneOf('provider type', r.u8('provider type'), [QpType.Rc, QpType.Ud]);
  if ((kind === 'rc') !== (verbsType === QpType.Rc)) throw badRecord(`${r.where}: a ${kind} QP of provider type ${verbsType}`);
  const [pd, sendCq, recvCq, srq] = ['PD', 'send CQ', 'receive CQ', 'SRQ'].map((n) => r.u32(n));
  const cap = { maxSendWr: r.u32('max send WRs'), maxRecvWr: r.u32('max receive WRs'), maxSendSge: r.u32('max send SGEs'), maxRecvSge: r.u32('max receive SGEs'), maxInlineData: r.u32('max inline') };
  const sigAll = r.bool('sigAll');
  // The guest never sees SUSPENDED (§9.2).
  const state = r.range('state', r.u8('state'), QpState.Reset, QpState.Err) as QpState;
  const sgidIndex = r.range('sgid index', r.i32('sgid index'), -1, 0xffff);
  const deviceSqe = r.bool('device SQE');
  const drainNotify = r.bool('drain notify');
  const qkey = r.u32('Q_Key');
  const flushVendor = r.u32('flush vendor error');
  return { qpn, index, kind, verbsType, pd, sendCq, recvCq, srq, cap, sigAll, state, sgidIndex, deviceSqe, drainNotify, qkey, flushVendor, sq: readWorkQueue(r), rq: readWorkQueue(r) };
}

export function writeSrq(w: FieldWriter, s: SavedSrq): void {
  w.u32(s.index).u32(s.verbsSrq).u32(s.pd).u32(s.maxWr).u32(s.maxSge).u32(s.limit).bool(s.error);
  writeWorkQueue(w, s.wq);
}

export function readSrq(r: FieldReader): SavedSrq {
  const [index, verbsSrq, pd, maxWr, maxSge, limit] = ['index', 'provider SRQ', 'PD', 'max WRs', 'max SGEs', 'limit'].map((n) => r.u32(n));
  return { index, verbsSrq, pd, maxWr, maxSge, limit, error: r.bool('error'), wq: readWorkQueue(r) };
}

export function writeEvents(w: FieldWriter, e: DeviceStateData['events']): void {
  w.bool(e.enabled).u64(e.written);
  w.list(e.pending, (x, ev) => x.u32(ev.type).u32(ev.handle));
}

export function readEvents(r: FieldReader): DeviceStateData['events'] {
  const enabled = r.bool('enabled');
  const written = r.u64n('events written');
  const pending = r.list('pending events', 1 << 20, 8, (x) => ({ type: x.oneOf('event type', x.u32('event type'), EVENT_TYPES) as EventType, handle: x.u32('event handle') }));
  return { enabled, written, pending };
}
