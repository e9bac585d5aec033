// A live RdmaDevice's state as plain data (the inverse of rebuild.ts), taken between two passes
// of the device, when every used entry is published: the rings' states then say exactly which
// chains the device holds, and those chains are in the work queues captured here.
import { PackedQueue } from '../../virtio/packed-queue.js';
import type { DeviceQueue } from '../../virtio/queue.js';
import type { QueueState } from '../../virtio/queue-state.js';
import { SplitQueue } from '../../virtio/split-queue.js';
import type { DescriptorChain } from '../../virtio/chain.js';
import { StateError, StateErrorCode } from '../../state/index.js';
import { CONFIG_BYTES } from '../config.js';
import type { DeviceCore } from '../core.js';
import type { EventQueue } from '../eventq.js';
import type { RdmaTransport } from '../transport.js';
import { encodeCqe } from '../cqe.js';
import type { WorkQueue } from '../work-queue.js';
import type { DeviceStateData, SavedChain, SavedQueue, SavedWorkQueue } from './types.js';

export interface DeviceParts {
  readonly transport: RdmaTransport;
  readonly core: DeviceCore;
  readonly events: EventQueue;
}

export function queueStateOf(queue: DeviceQueue): QueueState {
  if (queue instanceof SplitQueue) return { format: 'split', ...queue.state() };
  if (queue instanceof PackedQueue) return { format: 'packed', ...queue.state() };
  throw new StateError(StateErrorCode.Incompatible, 'this queue factory builds queues whose state cannot be saved');
}

function captureChain(chain: DescriptorChain, queue: DeviceQueue, transport: RdmaTransport, vq: number): SavedChain {
  const seg = (i: number) => {
    const s = chain.segment(i);
    return { gpa: s.gpa, len: s.len };
  };
  const readable = Array.from({ length: chain.readSegments }, (_, i) => seg(i));
  const writable = Array.from({ length: chain.writeSegments }, (_, i) => seg(chain.readSegments + i));
  return { id: chain.id, descCount: chain.descCount, readable, writable, current: transport.queue(vq) === queue };
}

function captureWorkQueue(wq: WorkQueue, transport: RdmaTransport): SavedWorkQueue {
  const { entries, pending } = wq.snapshot();
  return {
    halted: wq.halted,
    pending: pending.map((p) => captureChain(p.chain, p.queue, transport, wq.vq)),
    entries: entries.map((e) => ({
      seq: e.seq, chain: captureChain(e.chain, e.queue, transport, wq.vq), wrId: e.wrId, signaled: e.signaled,
      cqe: e.cqe === null ? null : encodeCqe(e.cqe), wqeError: e.wqeError, cq: e.cq, solicited: e.solicited, lkeys: [...e.lkeys],
    })),
  };
}

export function captureDevice(p: DeviceParts): DeviceStateData {
  const { transport: t, core } = p;
  const st = t.status;
  const queues: SavedQueue[] = [];
  for (const vq of t.touchedQueues()) {
    const queue = t.queue(vq);
    queues.push({ vq, config: t.queueConfig(vq), state: queue === null ? null : queueStateOf(queue), ...t.doorbells(vq) });
  }
  const gids: { index: number; ip: string }[] = [];
  core.gids.forEach((ip, index) => {
    if (ip !== null) gids.push({ index, ip });
  });
  return {
    deviceFeatures: st.deviceFeatures, driverFeatures: st.features, status: st.status, resetReason: st.resetReason,
    config: t.readConfig(0, CONFIG_BYTES), numQueues: t.numQueues, queues,
    allocators: { pd: core.pdIds.cursor, mr: core.mrIds.cursor, ah: core.ahIds.cursor, seq: core.seqCursor },
    gids,
    pds: [...core.pds.values()].map((pd) => ({ ...pd })),
    // A registration is replaced, never changed (cmd-mr.ts), so the copy may share it.
    mrs: [...core.mrs.values()].map((mr) => ({ ...mr })),
    ahs: [...core.ahs.values()].map((ah) => ({ ...ah })),
    cqs: core.cqs.filter((c) => c !== null).map((c) => ({
      index: c.index, depth: c.depth, verbsCq: c.verbsCq, armed: c.armed, error: c.error, cqesWritten: c.cqesWritten, notifyDue: c.notifyDue,
      backlog: c.backlogSnapshot(),
    })),
    qps: [...core.qps.values()].map((q) => ({
      qpn: q.qpn, index: q.index, kind: q.kind, verbsType: q.verbsType, pd: q.pd, sendCq: q.sendCq, recvCq: q.recvCq, srq: q.srq, cap: { ...q.cap },
      sigAll: q.sigAll, state: q.state, sgidIndex: q.sgidIndex, deviceSqe: q.deviceSqe, drainNotify: q.drainNotify, qkey: q.qkey,
      flushVendor: q.flushVendor, sq: captureWorkQueue(q.sq, t), rq: captureWorkQueue(q.rq, t),
    })),
    srqs: core.srqs.filter((s) => s !== null).map((s) => ({
      index: s.index, verbsSrq: s.verbsSrq, pd: s.pd, maxWr: s.maxWr, maxSge: s.maxSge, limit: s.limit, error: s.error, wq: captureWorkQueue(s.wq, t),
    })),
    events: { enabled: p.events.enabled, written: p.events.written, pending: p.events.snapshot() },
    provider: core.verbs.saveState(),
  };
}
