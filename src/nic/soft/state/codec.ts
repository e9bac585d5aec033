// A whole provider state: SoftRoceState <-> the records of a Provider-kind buffer, in the order
// docs/state-format.md gives (objects after what they refer to). Decoding checks every record by
// itself; check.ts then checks them against each other and the destination.
import { FieldReader, StateKind, StateWriter, dispatch, inconsistent, openState } from '../../../state/index.js';
import { readAllocators, readAh, readCounters, readCq, readGid, readMr, readProvider, readSrq, writeAh, writeAllocators, writeCounters, writeCq, writeGid, writeMr, writeProvider, writeSrq } from './object-codec.js';
import { readQp, writeQp } from './qp-codec.js';
import { PROVIDER_RECORD_NAMES, ProviderRecord as R } from './records.js';
import { type SoftRoceState, emptyCounters } from './types.js';

export function encodeSoftRoceState(s: SoftRoceState): Uint8Array {
  const w = new StateWriter(StateKind.Provider);
  w.record(R.Provider, (x) => writeProvider(x, s.localIp, s.portMtu));
  w.record(R.Allocators, (x) => writeAllocators(x, s.allocators));
  for (const g of s.gids) w.record(R.Gid, (x) => writeGid(x, g.index, g.ip));
  for (const pd of s.pds) w.record(R.Pd, (x) => x.u32(pd));
  for (const mr of s.mrs) w.record(R.Mr, (x) => writeMr(x, mr));
  for (const cq of s.cqs) w.record(R.Cq, (x) => writeCq(x, cq));
  for (const srq of s.srqs) w.record(R.Srq, (x) => writeSrq(x, srq));
  for (const ah of s.ahs) w.record(R.Ah, (x) => writeAh(x, ah));
  for (const qp of s.qps) w.record(R.Qp, (x) => writeQp(x, qp));
  w.record(R.Counters, (x) => writeCounters(x, s.counters));
  return w.finish();
}

export function decodeSoftRoceState(buf: Uint8Array): SoftRoceState {
  const { records } = openState(buf, StateKind.Provider, PROVIDER_RECORD_NAMES);
  let provider: ReturnType<typeof readProvider> | null = null;
  const out: Omit<SoftRoceState, 'localIp' | 'portMtu'> = {
    allocators: { pd: 0, cq: 0, qp: 0, srq: 0, ah: 0, keys: { cursor: 0, tags: [] } },
    gids: [], pds: [], mrs: [], cqs: [], srqs: [], ahs: [], qps: [],
    counters: emptyCounters(),
  };
  const seen = new Set<number>();
  const once = (type: R, fn: (r: FieldReader) => void) => (r: FieldReader) => {
    seen.add(type);
    fn(r);
  };
  const decoders = new Map<number, (r: FieldReader) => void>([
    [R.Provider, once(R.Provider, (r) => (provider = readProvider(r)))],
    [R.Allocators, once(R.Allocators, (r) => (out.allocators = readAllocators(r)))],
    [R.Gid, (r) => out.gids.push(readGid(r))],
    [R.Pd, (r) => out.pds.push(r.u32('handle'))],
    [R.Mr, (r) => out.mrs.push(readMr(r))],
    [R.Cq, (r) => out.cqs.push(readCq(r))],
    [R.Srq, (r) => out.srqs.push(readSrq(r))],
    [R.Ah, (r) => out.ahs.push(readAh(r))],
    [R.Qp, (r) => out.qps.push(readQp(r))],
    [R.Counters, once(R.Counters, (r) => (out.counters = readCounters(r)))],
  ]);
  dispatch(records, decoders, new Set([R.Provider, R.Allocators, R.Counters]));
  for (const t of [R.Provider, R.Allocators, R.Counters]) if (!seen.has(t)) throw inconsistent(`no ${PROVIDER_RECORD_NAMES.get(t)} record`);
  const p = provider as unknown as ReturnType<typeof readProvider>;
  return { localIp: p.localIp, portMtu: p.portMtu, ...out };
}
