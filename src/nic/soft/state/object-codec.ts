// Records for everything but QPs (docs/state-format.md, "Provider records"): the provider's
// identity, its allocators, GIDs, PDs, MRs with their page tables, CQs with unpolled
// completions, SRQs with posted WQEs, AHs and counters.
import type { PageTableState } from '../../mr/page-table-state.js';
import { PathMtu } from '../../types.js';
import { type FieldReader, type FieldWriter, badRecord, cachedPart } from '../../../state/index.js';
import { MAX_LIST } from './records.js';
import type { CqArm, SoftAhState, SoftAllocatorsState, SoftCountersState, SoftCqState, SoftMrState, SoftSrqState } from './types.js';
import { readAv, readIp, readRecvWqe, readWc, writeAv, writeIp, writeRecvWqe, writeWc } from './wqe-codec.js';

export function writeProvider(w: FieldWriter, localIp: string, portMtu: PathMtu): void {
  writeIp(w, localIp);
  w.u8(portMtu);
}

export function readProvider(r: FieldReader): { localIp: string; portMtu: PathMtu } {
  return { localIp: readIp(r, 'local address'), portMtu: r.range('port MTU', r.u8('port MTU'), PathMtu.Mtu256, PathMtu.Mtu4096) };
}

export function writeAllocators(w: FieldWriter, a: SoftAllocatorsState): void {
  w.u32(a.pd).u32(a.cq).u32(a.qp).u32(a.srq).u32(a.ah).u32(a.keys.cursor);
  w.list(a.keys.tags, (x, [index, tag]) => x.u32(index).u8(tag));
}

export function readAllocators(r: FieldReader): SoftAllocatorsState {
  const [pd, cq, qp, srq, ah, cursor] = ['PD', 'CQ', 'QPN', 'SRQ', 'AH', 'key'].map((n) => r.u32(`${n} cursor`));
  const tags = r.list('key tags', MAX_LIST, 5, (x): [number, number] => [x.u32('key index'), x.u8('key tag')]);
  return { pd, cq, qp, srq, ah, keys: { cursor, tags } };
}

export function writeGid(w: FieldWriter, index: number, ip: string): void {
  w.u32(index);
  writeIp(w, ip);
}

export function readGid(r: FieldReader): { index: number; ip: string } {
  return { index: r.u32('GID index'), ip: readIp(r, 'GID') };
}

const KIND_PHYSICAL = 1;
const KIND_ALL_MEMORY = 2;

export function writeMr(w: FieldWriter, mr: SoftMrState): void {
  const t = mr.table;
  w.u32(mr.key).u32(mr.pd);
  // A live table's state is one object until the table changes (PageTable.toState).
  cachedPart(w, t, (x) => {
    x.u8(t.kind === 'physical' ? KIND_PHYSICAL : KIND_ALL_MEMORY).u8(t.pageShift).u32(t.access).bool(t.onDemand);
    if (t.kind === 'physical') {
      x.u64(t.iova).u64(t.length);
      x.list(t.pages, (y, p) => y.u64(p));
    } else {
      x.bool(t.sizeBytes !== null).u64(t.sizeBytes ?? 0);
    }
    x.list(t.absent, (y, i) => y.u32(i));
  });
}

export function readMr(r: FieldReader): SoftMrState {
  const key = r.u32('key');
  const pd = r.u32('PD');
  const kind = r.oneOf('page table kind', r.u8('page table kind'), [KIND_PHYSICAL, KIND_ALL_MEMORY]);
  const pageShift = r.oneOf('page shift', r.u8('page shift'), [12, 21]);
  const access = r.u32('access');
  const onDemand = r.bool('on demand');
  let table: PageTableState;
  if (kind === KIND_PHYSICAL) {
    const iova = r.u64n('iova');
    const length = r.u64n('length');
    const pages = r.list('pages', MAX_LIST, 8, (x) => x.u64n('page'));
    table = { kind: 'physical', iova, length, pages, pageShift, access, onDemand, absent: [] };
  } else {
    const sized = r.bool('has size');
    const size = r.u64n('size');
    table = { kind: 'all-memory', sizeBytes: sized ? size : null, pageShift, access, onDemand, absent: [] };
  }
  const absent = r.list('absent pages', MAX_LIST, 4, (x) => x.u32('absent page'));
  return { key, pd, table: { ...table, absent } };
}

const ARMS: readonly CqArm[] = ['none', 'all', 'solicited'];

export function writeCq(w: FieldWriter, cq: SoftCqState): void {
  w.u32(cq.handle).u32(cq.depth).u8(ARMS.indexOf(cq.armed)).bool(cq.overrun);
  w.list(cq.entries, writeWc);
}

export function readCq(r: FieldReader): SoftCqState {
  const handle = r.u32('handle');
  const depth = r.u32('depth');
  const armed = ARMS[r.range('arm', r.u8('arm'), 0, 2)];
  const overrun = r.bool('overrun');
  const entries = r.list('completions', MAX_LIST, 41, readWc);
  if (entries.length > depth) throw badRecord(`${r.where}: ${entries.length} completions in a CQ of ${depth}`);
  return { handle, depth, armed, overrun, entries };
}

export function writeSrq(w: FieldWriter, s: SoftSrqState): void {
  w.u32(s.handle).u32(s.pd).u32(s.maxWr).u32(s.maxSge).u32(s.limit);
  w.list(s.wqes, writeRecvWqe);
}

export function readSrq(r: FieldReader): SoftSrqState {
  const handle = r.u32('handle');
  const pd = r.u32('PD');
  const maxWr = r.u32('max WRs');
  const maxSge = r.u32('max SGEs');
  const limit = r.u32('limit');
  const wqes = r.list('WQEs', MAX_LIST, 12, readRecvWqe);
  return { handle, pd, maxWr, maxSge, limit, wqes };
}

export function writeAh(w: FieldWriter, ah: SoftAhState): void {
  w.u32(ah.handle).u32(ah.pd);
  writeAv(w, ah.av);
}

export function readAh(r: FieldReader): SoftAhState {
  return { handle: r.u32('handle'), pd: r.u32('PD'), av: readAv(r) };
}

export function writeCounters(w: FieldWriter, c: SoftCountersState): void {
  w.u64(c.internalErrors).u64(c.packetsSent).u64(c.packetsReceived);
  w.list(c.dropped, (x, [name, n]) => x.str(name).u64(n));
  w.list(c.events, (x, [name, n]) => x.str(name).u64(n));
}

export function readCounters(r: FieldReader): SoftCountersState {
  const internalErrors = r.u64n('internal errors');
  const packetsSent = r.u64n('packets sent');
  const packetsReceived = r.u64n('packets received');
  const entry = (x: FieldReader): [string, number] => [x.str('counter name', 256), x.u64n('counter')];
  const dropped = r.list('drop counters', 4096, 10, entry);
  const events = r.list('event counters', 4096, 10, entry);
  return { internalErrors, packetsSent, packetsReceived, dropped, events };
}
