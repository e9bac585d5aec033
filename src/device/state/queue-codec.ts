// Virtqueues and what the device holds of them (docs/state-format.md, "QUEUE" and "Work
// queues"): a queue's configuration, ring state and doorbell counts; the chains the device popped
// and has not answered, each by its ring id and its buffers' guest-physical addresses (memory
// offsets are the destination's business: rebuild.ts translates the addresses again).
import type { QueueState } from '../../virtio/queue-state.js';
import { type FieldReader, type FieldWriter } from '../../state/index.js';
import { CQE_BYTES } from '../abi.js';
import type { SavedChain, SavedEntry, SavedQueue, SavedSegment, SavedWorkQueue } from './types.js';

const MAX_SEGMENTS = 1 << 16;
const MAX_ENTRIES = 1 << 20;

export function writeQueue(w: FieldWriter, q: SavedQueue): void {
  w.u32(q.vq).u32(q.config.size).u64(q.config.descGpa).u64(q.config.driverGpa).u64(q.config.deviceGpa).u32(q.kick >>> 0).u32(q.call >>> 0);
  w.bool(q.state !== null);
  const s = q.state;
  if (s === null) return;
  if (s.format === 'split') {
    w.u8(0).u32(s.size).u64(s.descGpa).u64(s.availGpa).u64(s.usedGpa).u16(s.nextAvail).u16(s.nextUsed).bool(s.eventIdx).bool(s.indirectDesc);
  } else {
    w.u8(1).u32(s.size).u64(s.descGpa).u64(s.driverEventGpa).u64(s.deviceEventGpa).bool(s.eventIdx).bool(s.indirect);
    w.u16(s.nextAvail).u8(s.availWrap).u16(s.nextUsed).u8(s.usedWrap).u32(s.inflightSlots).u16(s.signalSlot).u8(s.signalWrap).bool(s.signalValid);
  }
}

export function readQueue(r: FieldReader): SavedQueue {
  const vq = r.u32('virtqueue');
  const config = { size: r.u32('size'), descGpa: r.u64n('desc GPA'), driverGpa: r.u64n('driver area GPA'), deviceGpa: r.u64n('device area GPA') };
  const kick = r.u32('kick count');
  const call = r.u32('call count');
  let state: QueueState | null = null;
  if (r.bool('enabled')) {
    const format = r.range('ring format', r.u8('ring format'), 0, 1);
    if (format === 0) {
      state = {
        format: 'split', size: r.u32('ring size'), descGpa: r.u64n('desc GPA'), availGpa: r.u64n('avail GPA'), usedGpa: r.u64n('used GPA'),
        nextAvail: r.u16('next avail'), nextUsed: r.u16('next used'), eventIdx: r.bool('event idx'), indirectDesc: r.bool('indirect'),
      };
    } else {
      state = {
        format: 'packed', size: r.u32('ring size'), descGpa: r.u64n('desc GPA'), driverEventGpa: r.u64n('driver event GPA'),
        deviceEventGpa: r.u64n('device event GPA'), eventIdx: r.bool('event idx'), indirect: r.bool('indirect'),
        nextAvail: r.u16('next avail'), availWrap: r.u8('avail wrap'), nextUsed: r.u16('next used'), usedWrap: r.u8('used wrap'),
        inflightSlots: r.u32('slots in flight'), signalSlot: r.u16('signal slot'), signalWrap: r.u8('signal wrap'), signalValid: r.bool('signal valid'),
      };
    }
  }
  return { vq, config, state, kick, call };
}

function writeSegments(w: FieldWriter, list: readonly SavedSegment[]): void {
  w.list(list, (x, s) => x.u64(s.gpa).u32(s.len));
}

function readSegments(r: FieldReader, name: string): SavedSegment[] {
  return r.list(name, MAX_SEGMENTS, 12, (x) => ({ gpa: x.u64n('segment GPA'), len: x.range('segment length', x.u32('segment length'), 1, 0xffffffff) }));
}

export function writeChain(w: FieldWriter, c: SavedChain): void {
  w.u16(c.id).u16(c.descCount).bool(c.current);
  writeSegments(w, c.readable);
  writeSegments(w, c.writable);
}

export function readChain(r: FieldReader): SavedChain {
  const id = r.u16('chain id');
  const descCount = r.u16('descriptor count');
  const current = r.bool('from the current queue');
  return { id, descCount, current, readable: readSegments(r, 'readable segments'), writable: readSegments(r, 'writable segments') };
}

function writeEntry(w: FieldWriter, e: SavedEntry): void {
  w.u64(e.seq);
  writeChain(w, e.chain);
  w.u64(e.wrId).bool(e.signaled).bool(e.cqe !== null);
  if (e.cqe !== null) w.raw(e.cqe);
  w.bool(e.wqeError).i32(e.cq).bool(e.solicited);
  w.list(e.lkeys, (x, k) => x.u32(k));
}

function readEntry(r: FieldReader): SavedEntry {
  const seq = r.u64n('sequence number');
  const chain = readChain(r);
  const wrId = r.u64('wrId');
  const signaled = r.bool('signaled');
  const cqe = r.bool('completed') ? r.raw('CQE', CQE_BYTES) : null;
  const wqeError = r.bool('WQE error');
  const cq = r.range('CQ index', r.i32('CQ index'), -1, 0x7fffffff);
  const solicited = r.bool('solicited');
  const lkeys = r.list('lkeys', 1024, 4, (x) => x.u32('lkey'));
  return { seq, chain, wrId, signaled, cqe, wqeError, cq, solicited, lkeys };
}

export function writeWorkQueue(w: FieldWriter, q: SavedWorkQueue): void {
  w.bool(q.halted);
  w.list(q.pending, writeChain);
  w.list(q.entries, writeEntry);
}

export function readWorkQueue(r: FieldReader): SavedWorkQueue {
  const halted = r.bool('halted');
  const pending = r.list('pending chains', MAX_ENTRIES, 13, readChain);
  const entries = r.list('work requests', MAX_ENTRIES, 40, readEntry);
  return { halted, pending, entries };
}
