// Restoring an RdmaDevice from a state buffer (R9), onto a device just created over a
// DeviceMemory whose RAM already holds the guest's pages: decode; check the device records
// against this device and the nested provider state against the provider (inspectState), before
// anything is built; build the rings (device arena: the one step that can run out of room);
// restore the provider; then put the transport, objects and held chains in place.
import { DescriptorChain, chainRecordBytes, writeChainHeader, writeSegment } from '../../virtio/chain.js';
import type { DeviceQueue } from '../../virtio/queue.js';
import { VirtioError } from '../../virtio/errors.js';
import { StateError, StateErrorCode, incompatible } from '../../state/index.js';
import { DeviceCq } from '../cq.js';
import { decodeCqe } from '../cqe.js';
import { DeviceError } from '../errors.js';
import type { InFlight, QpObj, SrqObj } from '../core.js';
import type { OwnedQueue, QueueFactory } from '../queue-factory.js';
import { WorkQueue, type WqEntry } from '../work-queue.js';
import type { DeviceParts } from './capture.js';
import { checkDeviceState } from './check.js';
import { decodeDeviceState } from './codec.js';
import type { DeviceStateData, SavedChain, SavedWorkQueue } from './types.js';

/**
 * Where chains popped from a queue that was reset since go back to: nowhere. The datapath gives a
 * chain back only to the queue now enabled on its virtqueue, so this one is never used.
 */
const DETACHED: DeviceQueue = {
  format: 'split', size: 0, broken: true,
  pop: () => [],
  addUsed: () => {},
  flush: () => false,
  enableNotification: () => false,
  disableNotification: () => {},
};

function isEmpty(p: DeviceParts): boolean {
  const { transport: t, core } = p;
  for (let vq = 0; vq < t.numQueues; vq++) if (t.queue(vq) !== null) return false;
  return t.status.status === 0 && core.pds.size + core.mrs.size + core.ahs.size + core.qps.size === 0 &&
    core.cqs.every((c) => c === null) && core.srqs.every((s) => s === null) && core.gids.every((g, i) => i === 0 || g === null);
}

/**
 * Where rebuilt chain records go: one buffer for every chain the device held, each record at its
 * own offset (a saved device holds a chain per outstanding WQE, hundreds with many QPs, and a
 * buffer each would cost an allocation each at the switchover).
 */
class ChainRecords {
  private readonly view: DataView;
  private at = 0;

  constructor(s: DeviceStateData) {
    let bytes = 0;
    const count = (wq: SavedWorkQueue) => {
      for (const c of wq.pending) bytes += chainRecordBytes(c.readable.length + c.writable.length);
      for (const e of wq.entries) bytes += chainRecordBytes(e.chain.readable.length + e.chain.writable.length);
    };
    for (const x of s.srqs) count(x.wq);
    for (const q of s.qps) {
      count(q.sq);
      count(q.rq);
    }
    this.view = new DataView(new ArrayBuffer(bytes));
  }

  /** Rebuild a chain record from guest-physical buffers, translated by this device's memory. */
  chainOf(c: SavedChain, p: DeviceParts): DescriptorChain {
    const segs = [...c.readable, ...c.writable];
    const at = this.at;
    this.at += chainRecordBytes(segs.length);
    const view = this.view;
    const sum = (list: readonly { len: number }[]) => list.reduce((n, x) => n + x.len, 0);
    writeChainHeader(view, at, c.id, c.descCount, c.readable.length, c.writable.length, sum(c.readable), sum(c.writable));
    segs.forEach((x, i) => writeSegment(view, at + 16 + 16 * i, p.transport.dm.guest.tryTranslate(x.gpa, x.len), x.len, x.gpa % 2 ** 32, Math.floor(x.gpa / 2 ** 32)));
    return new DescriptorChain(view, at);
  }
}

/** Decode and check; throws StateError. The provider's part is checked by the provider itself. */
export function checkedDeviceState(p: DeviceParts, buf: Uint8Array): DeviceStateData {
  const s = decodeDeviceState(buf);
  if (!isEmpty(p)) throw new StateError(StateErrorCode.NotEmpty, 'the device has been started or holds objects');
  const verbs = p.core.verbs;
  if (verbs.inspectState === undefined || !verbs.capabilities.saveState) throw incompatible(`provider ${verbs.name} cannot restore state`);
  const summary = verbs.inspectState(s.provider);
  checkDeviceState(s, p.transport, p.core.config, summary);
  return s;
}

export function restoreDevice(p: DeviceParts, factory: QueueFactory, buf: Uint8Array): void {
  const s = checkedDeviceState(p, buf);
  const { transport: t, core } = p;
  const dm = t.dm;
  const built = new Map<number, OwnedQueue>();
  const release = () => {
    for (const q of built.values()) q.dispose();
  };
  try {
    for (const q of s.queues) {
      if (q.state === null) continue;
      if (factory.fromState === undefined) throw incompatible('this device\'s queue factory cannot restore rings');
      built.set(q.vq, factory.fromState(dm, q.state, `vq${q.vq}`));
    }
  } catch (err) {
    release();
    if (err instanceof StateError) throw err;
    if (err instanceof VirtioError || err instanceof DeviceError) throw incompatible(`a ring is not usable here: ${err.message}`);
    throw new StateError(StateErrorCode.NoResources, `rings: ${(err as Error).message}`);
  }
  try {
    core.verbs.restoreState(s.provider);
  } catch (err) {
    release();
    throw err;
  }
  install(p, s, built);
}

function install(p: DeviceParts, s: DeviceStateData, built: ReadonlyMap<number, OwnedQueue>): void {
  const { transport: t, core } = p;
  t.status.restore(s.status, s.driverFeatures, s.resetReason);
  for (const q of s.queues) t.restoreQueue(q.vq, q.config, built.get(q.vq) ?? null, { kick: q.kick, call: q.call });
  const queueOf = (c: SavedChain, vq: number): DeviceQueue => (c.current ? (built.get(vq) as DeviceQueue) : DETACHED);
  const a = s.allocators;
  for (const g of s.gids) core.gids[g.index] = g.ip;
  for (const pd of s.pds) {
    core.pdIds.reserve(pd.handle);
    core.pds.set(pd.handle, { ...pd });
  }
  for (const mr of s.mrs) {
    core.mrIds.reserve(mr.handle);
    core.mrs.set(mr.handle, { ...mr });
  }
  for (const ah of s.ahs) {
    core.ahIds.reserve(ah.handle);
    core.ahs.set(ah.handle, { ...ah });
  }
  if (core.pdIds.cursor !== a.pd) core.pdIds.seek(a.pd);
  if (core.mrIds.cursor !== a.mr) core.mrIds.seek(a.mr);
  if (core.ahIds.cursor !== a.ah) core.ahIds.seek(a.ah);
  core.seqCursor = a.seq;
  for (const c of s.cqs) {
    const cq = new DeviceCq(c.index, c.depth, c.verbsCq);
    cq.armed = c.armed;
    cq.error = c.error;
    cq.cqesWritten = c.cqesWritten;
    cq.notifyDue = c.notifyDue;
    cq.loadBacklog(c.backlog);
    core.cqs[c.index] = cq;
    core.cqByVerbs.set(c.verbsCq, cq);
  }
  const records = new ChainRecords(s);
  const chainOf = (c: SavedChain) => records.chainOf(c, p);
  const fill = (wq: WorkQueue, saved: SavedWorkQueue, qp: QpObj | null, srq: SrqObj | null) => {
    wq.halted = saved.halted;
    for (const c of saved.pending) wq.pending.push({ chain: chainOf(c), queue: queueOf(c, wq.vq) });
    for (const e of saved.entries) {
      const entry: WqEntry = {
        seq: e.seq, chain: chainOf(e.chain), queue: queueOf(e.chain, wq.vq), wrId: e.wrId, signaled: e.signaled,
        cqe: e.cqe === null ? null : decodeCqe(e.cqe), wqeError: e.wqeError, cq: e.cq, solicited: e.solicited, lkeys: [...e.lkeys],
      };
      wq.push(entry);
      // Still with the provider: its completion comes back by this sequence number.
      if (entry.cqe === null) core.inFlight.set(entry.seq, { entry, wq, qp, srq } satisfies InFlight);
    }
  };
  for (const x of s.srqs) {
    const srq: SrqObj = { handle: x.index + 1, index: x.index, verbsSrq: x.verbsSrq, pd: x.pd, maxWr: x.maxWr, maxSge: x.maxSge, limit: x.limit, error: x.error, wq: new WorkQueue(t.map.srq(x.index), false) };
    fill(srq.wq, x.wq, null, srq);
    core.srqs[x.index] = srq;
  }
  for (const q of s.qps) {
    const qp: QpObj = {
      qpn: q.qpn, index: q.index, kind: q.kind, verbsType: q.verbsType, pd: q.pd, sendCq: q.sendCq, recvCq: q.recvCq, srq: q.srq, cap: { ...q.cap },
      sigAll: q.sigAll, state: q.state, sgidIndex: q.sgidIndex, deviceSqe: q.deviceSqe, drainNotify: q.drainNotify, qkey: q.qkey, flushVendor: q.flushVendor,
      sq: new WorkQueue(t.map.sq(q.index), true), rq: new WorkQueue(t.map.rq(q.index), true),
    };
    fill(qp.sq, q.sq, qp, null);
    fill(qp.rq, q.rq, qp, null);
    core.qps.set(q.qpn, qp);
    core.qpByIndex[q.index] = qp;
    core.cqs[q.sendCq]?.users.add(q.qpn);
    core.cqs[q.recvCq]?.users.add(q.qpn);
  }
  p.events.load(s.events.pending, s.events.written);
  p.events.enabled = s.events.enabled;
}
