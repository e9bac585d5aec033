// A whole device state: DeviceStateData <-> the records of a Device-kind buffer.
import { type FieldReader, StateKind, StateWriter, dispatch, inconsistent, openState } from '../../state/index.js';
import {
  type TransportData, readAh, readAllocators, readCq, readEvents, readGid, readMr, readQp, readSrq, readTransport, writeAh, writeAllocators,
  writeCq, writeEvents, writeGid, writeMr, writeQp, writeSrq, writeTransport,
} from './object-codec.js';
import { readQueue, writeQueue } from './queue-codec.js';
import { DEVICE_RECORD_NAMES, DeviceRecord as R } from './records.js';
import type { DeviceStateData } from './types.js';

/** A provider state nested in a device state is at most this large. */
const MAX_PROVIDER_BYTES = 2 ** 31;

export function encodeDeviceState(s: DeviceStateData): Uint8Array {
  const w = new StateWriter(StateKind.Device);
  w.record(R.Transport, (x) => writeTransport(x, s));
  for (const q of s.queues) w.record(R.Queue, (x) => writeQueue(x, q));
  w.record(R.Allocators, (x) => writeAllocators(x, s.allocators));
  for (const g of s.gids) w.record(R.Gid, (x) => writeGid(x, g));
  for (const pd of s.pds) w.record(R.Pd, (x) => x.u32(pd.handle).u32(pd.verbsPd));
  for (const mr of s.mrs) w.record(R.Mr, (x) => writeMr(x, mr));
  for (const ah of s.ahs) w.record(R.Ah, (x) => writeAh(x, ah));
  for (const cq of s.cqs) w.record(R.Cq, (x) => writeCq(x, cq));
  for (const srq of s.srqs) w.record(R.Srq, (x) => writeSrq(x, srq));
  for (const qp of s.qps) w.record(R.Qp, (x) => writeQp(x, qp));
  w.record(R.Events, (x) => writeEvents(x, s.events));
  w.record(R.Provider, (x) => x.bytes(s.provider));
  return w.finish();
}

export function decodeDeviceState(buf: Uint8Array): DeviceStateData {
  const { records } = openState(buf, StateKind.Device, DEVICE_RECORD_NAMES);
  let transport: TransportData | null = null;
  let provider: Uint8Array | null = null;
  const out: Omit<DeviceStateData, keyof TransportData | 'provider'> = {
    queues: [], allocators: { pd: 1, mr: 1, ah: 1, seq: 1 }, gids: [], pds: [], mrs: [], ahs: [], cqs: [], qps: [], srqs: [],
    events: { enabled: false, written: 0, pending: [] },
  };
  const seen = new Set<number>();
  const once = (type: R, fn: (r: FieldReader) => void) => (r: FieldReader) => {
    seen.add(type);
    fn(r);
  };
  const decoders = new Map<number, (r: FieldReader) => void>([
    [R.Transport, once(R.Transport, (r) => (transport = readTransport(r)))],
    [R.Queue, (r) => out.queues.push(readQueue(r))],
    [R.Allocators, once(R.Allocators, (r) => (out.allocators = readAllocators(r)))],
    [R.Gid, (r) => out.gids.push(readGid(r))],
    [R.Pd, (r) => out.pds.push({ handle: r.u32('handle'), verbsPd: r.u32('provider PD') })],
    [R.Mr, (r) => out.mrs.push(readMr(r))],
    [R.Ah, (r) => out.ahs.push(readAh(r))],
    [R.Cq, (r) => out.cqs.push(readCq(r))],
    [R.Srq, (r) => out.srqs.push(readSrq(r))],
    [R.Qp, (r) => out.qps.push(readQp(r))],
    [R.Events, once(R.Events, (r) => (out.events = readEvents(r)))],
    [R.Provider, once(R.Provider, (r) => (provider = r.bytes('provider state', MAX_PROVIDER_BYTES)))],
  ]);
  dispatch(records, decoders, new Set([R.Transport, R.Allocators, R.Events, R.Provider]));
  for (const t of [R.Transport, R.Allocators, R.Events, R.Provider]) if (!seen.has(t)) throw inconsistent(`no ${DEVICE_RECORD_NAMES.get(t)} record`);
  return { ...(transport as unknown as TransportData), ...out, provider: provider as unknown as Uint8Array };
}
