// The data path of the device (docs/device-spec.md §10, §11): send, receive and SRQ queues become
// provider work requests, provider completions become CQEs. The provider sees the device's own
// sequence numbers as wrIds; each chain is held until its work request retires and is then
// returned, in posting order for a QP's queues (§10.5). Errors the device finds itself (malformed
// WQEs, flushes of WQEs posted to a QP in ERR) complete in the same order as the provider's.
import { QpAttr, QpState } from '../nic/qp-state.js';
import type { WrOpcode } from '../nic/types.js';
import type { WorkCompletion } from '../nic/verbs.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import type { DeviceQueue } from '../virtio/queue.js';
import { CqeOpcode, CqeStatus, EventType, VendorErr } from './abi.js';
import { u64 } from './bytes.js';
import type { DeviceCore, MrObj, QpObj, SrqObj } from './core.js';
import { type CqSink, DeviceCq } from './cq.js';
import { cqeFromWc, deviceCqe, sendCqeOpcode } from './cqe.js';
import { decodeRecvWqe, decodeSendWqe } from './wqe.js';
import { type WorkQueue, type WqEntry, detachChains } from './work-queue.js';
import type { DescriptorChain } from '../virtio/chain.js';

/** Polls per provider CQ per pass: bounds one pass; what is left waits for the next. */
const POLL_BATCH = 64;
const MAX_POLLS = 64;

export class Datapath {
  /** Queues with used entries to publish at the end of the pass. */
  private readonly touched = new Set<number>();
  readonly sink: CqSink;

  private readonly memory: Uint8Array;

  constructor(private readonly core: DeviceCore, private readonly dm: DeviceMemory) {
    const map = core.transport.map;
    const memory = dm.guest.bytes;
    this.memory = memory;
    this.sink = {
      memory,
      queueOf: (cq) => core.transport.queue(map.cq(cq.index)),
      touched: (cq) => this.touched.add(map.cq(cq.index)),
      // The device's dirty log, read at each write: it may be attached after the device is built.
      get log() {
        return dm.dirtyLog;
      },
      overrun: (cq, reason) => this.cqOverrun(cq, reason),
    };
  }

  // ---- kicks -------------------------------------------------------------------------------

  serviceSq(qp: QpObj): void {
    this.pull(qp.sq);
    this.advanceSq(qp);
  }

  serviceRq(qp: QpObj): void {
    this.pull(qp.rq);
    this.advanceRq(qp);
  }

  serviceSrq(srq: SrqObj): void {
    this.pull(srq.wq);
    this.advanceSrq(srq);
  }

  serviceCq(cq: DeviceCq): void {
    cq.drain(this.sink);
  }

  /** Take every available chain of the queue into `wq.pending` (each round takes >= 1). */
  private pull(wq: WorkQueue): void {
    const queue = this.core.transport.queue(wq.vq);
    if (queue === null) return;
    for (let round = 0; round <= queue.size; round++) {
      const chains = queue.pop();
      if (chains.length === 0) break;
      for (const chain of detachChains(chains, this.memory)) wq.pending.push({ chain, queue });
    }
  }

  private entry(seq: number, chain: DescriptorChain, queue: DeviceQueue, cq: number, wrId: bigint): WqEntry {
    return { seq, chain, queue, wrId, signaled: true, cqe: null, wqeError: false, cq, solicited: false, lkeys: [] };
  }

  private advanceSq(qp: QpObj): void {
    const wq = qp.sq;
    const { core } = this;
    while (wq.pending.length > 0 && !wq.halted) {
      if (qp.state !== QpState.Rts && qp.state !== QpState.Err) break;
      const { chain, queue } = wq.pending.shift() as { chain: DescriptorChain; queue: DeviceQueue };
      const seq = core.seq();
      if (qp.state === QpState.Err) {
        const { wrId, opcode } = peekHeader(chain, this.memory);
        const e = this.entry(seq, chain, queue, qp.sendCq, wrId);
        e.cqe = deviceCqe(wrId, CqeStatus.WrFlushErr, sendOpcode(opcode), qp.flushVendor, qp.qpn);
        wq.push(e);
        continue;
      }
      const d = decodeSendWqe(core, qp, chain, this.memory, seq);
      const e = this.entry(seq, chain, queue, qp.sendCq, d.wrId);
      if (!d.ok) {
        e.cqe = deviceCqe(d.wrId, d.error.status, sendOpcode(d.opcode), d.error.vendorErr, qp.qpn);
        e.wqeError = true;
        wq.halted = true;
        wq.push(e);
        continue;
      }
      e.signaled = d.signaled;
      e.lkeys = d.lkeys;
      wq.push(e);
      try {
        core.verbs.postSend(qp.qpn, [d.wr]);
        core.inFlight.set(seq, { entry: e, wq, qp, srq: null });
      } catch {
        // The provider refused it (queue full, state): a local QP operation error.
        e.cqe = deviceCqe(d.wrId, CqeStatus.LocQpOpErr, sendOpcode(d.wr.opcode), VendorErr.NONE, qp.qpn);
        e.wqeError = true;
        wq.halted = true;
      }
    }
    this.retire(wq, qp, null);
  }

  private advanceRq(qp: QpObj): void {
    const wq = qp.rq;
    const { core } = this;
    if (qp.srq !== 0) {
      // §10.4: receive WQEs on the recvq of an SRQ-attached QP go straight back, no CQE.
      for (const { chain, queue } of wq.pending.splice(0)) this.giveBack(wq.vq, chain, queue);
      return;
    }
    while (wq.pending.length > 0 && !wq.halted && qp.state !== QpState.Reset) {
      const { chain, queue } = wq.pending.shift() as { chain: DescriptorChain; queue: DeviceQueue };
      const seq = core.seq();
      if (qp.state === QpState.Err) {
        const { wrId } = peekHeader(chain, this.memory);
        const e = this.entry(seq, chain, queue, qp.recvCq, wrId);
        e.cqe = deviceCqe(wrId, CqeStatus.WrFlushErr, CqeOpcode.Recv, qp.flushVendor, qp.qpn);
        wq.push(e);
        continue;
      }
      const d = decodeRecvWqe(chain, this.memory, qp.cap.maxRecvSge, seq);
      const e = this.entry(seq, chain, queue, qp.recvCq, d.wrId);
      wq.push(e);
      if (!d.ok) {
        e.cqe = deviceCqe(d.wrId, d.error.status, CqeOpcode.Recv, d.error.vendorErr, qp.qpn);
        e.wqeError = true;
        wq.halted = true;
        // Earlier receives may wait for messages forever: enter ERR now, so the provider flushes
        // them and they complete (before this one, in posting order).
        this.moveToErr(qp);
        continue;
      }
      e.lkeys = d.lkeys;
      try {
        core.verbs.postRecv(qp.qpn, [d.wr]);
        core.inFlight.set(seq, { entry: e, wq, qp, srq: null });
      } catch {
        e.cqe = deviceCqe(d.wrId, CqeStatus.LocQpOpErr, CqeOpcode.Recv, VendorErr.NONE, qp.qpn);
        e.wqeError = true;
        wq.halted = true;
      }
    }
    this.retire(wq, qp, null);
  }

  private advanceSrq(srq: SrqObj): void {
    const wq = srq.wq;
    const { core } = this;
    // An SRQ in error is not read any more (§10.4); its buffers come back on DESTROY_SRQ.
    while (wq.pending.length > 0 && !srq.error) {
      const { chain, queue } = wq.pending.shift() as { chain: DescriptorChain; queue: DeviceQueue };
      const seq = core.seq();
      const d = decodeRecvWqe(chain, this.memory, srq.maxSge, seq);
      if (!d.ok) {
        srq.error = true;
        core.events.raise(EventType.SrqErr, srq.handle);
        this.giveBack(wq.vq, chain, queue);
        break;
      }
      const e = this.entry(seq, chain, queue, -1, d.wrId);
      e.lkeys = d.lkeys;
      try {
        core.verbs.postSrqRecv(srq.verbsSrq, [d.wr]);
      } catch {
        srq.error = true;
        core.events.raise(EventType.SrqErr, srq.handle);
        this.giveBack(wq.vq, chain, queue);
        break;
      }
      wq.push(e);
      core.inFlight.set(seq, { entry: e, wq, qp: null, srq });
    }
  }

  // ---- completions -------------------------------------------------------------------------

  /** Move the provider CQ's completions into CQEs; returns false if some are left for later. */
  pollProvider(verbsCq: number): boolean {
    const { core } = this;
    for (let i = 0; i < MAX_POLLS; i++) {
      const wcs = core.verbs.pollCq(verbsCq, POLL_BATCH);
      for (const wc of wcs) this.complete(verbsCq, wc);
      if (wcs.length < POLL_BATCH) return true;
    }
    return false;
  }

  private complete(verbsCq: number, wc: WorkCompletion): void {
    const { core } = this;
    const seq = typeof wc.wrId === 'bigint' && wc.wrId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(wc.wrId) : -1;
    const rec = core.inFlight.get(seq);
    // Not ours any more (its QP was reset or destroyed): nothing to report.
    if (rec === undefined) return;
    core.inFlight.delete(seq);
    const e = rec.entry;
    const qp = rec.qp ?? core.qps.get(wc.qpNum) ?? null;
    e.cqe = cqeFromWc(wc, e.wrId, qp !== null && qp.kind !== 'rc');
    if (e.cqe.status === CqeStatus.WrFlushErr && qp !== null) e.cqe.vendorErr = qp.flushVendor;
    e.solicited = wc.solicited === true;
    if (rec.srq !== null) e.cq = core.cqByVerbs.get(verbsCq)?.index ?? -1;
    this.retire(rec.wq, qp, rec.srq);
  }

  /** Retire what can retire: CQEs in order, chains back, QP state changes for errors. */
  private retire(wq: WorkQueue, qp: QpObj | null, srq: SrqObj | null): void {
    const { core } = this;
    let resume = false;
    for (const e of wq.retire()) {
      const cqe = e.cqe as NonNullable<typeof e.cqe>;
      const failed = cqe.status !== CqeStatus.Success;
      if (e.signaled || failed) core.cqs[e.cq]?.deliver(this.sink, cqe, e.solicited || failed);
      this.giveBack(wq.vq, e.chain, e.queue);
      if (qp === null || !failed || cqe.status === CqeStatus.WrFlushErr) continue;
      const isSend = wq === qp.sq;
      if (isSend && qp.kind !== 'rc') {
        // §10.6: a UD send error stops the send queue in SQE until the driver moves it to RTS.
        if (qp.state !== QpState.Err) {
          qp.state = QpState.Sqe;
          qp.deviceSqe = e.wqeError;
        }
      } else if (e.wqeError) {
        this.moveToErr(qp);
      } else {
        qp.state = QpState.Err;
      }
      if (e.wqeError) {
        wq.halted = false;
        resume = true;
      }
    }
    if (srq === null && qp !== null && qp.state === QpState.Sqd && qp.drainNotify && qp.sq.inFlight === 0) {
      qp.drainNotify = false;
      core.events.raise(EventType.SqDrained, qp.qpn);
    }
    if (resume && qp !== null) this.wake(qp);
  }

  private giveBack(vq: number, chain: DescriptorChain, queue: DeviceQueue): void {
    // A queue reset (RING_RESET) forgot its chains: they have nowhere to go.
    if (this.core.transport.queue(vq) !== queue) return;
    queue.addUsed(chain, 0);
    this.touched.add(vq);
  }

  // ---- state changes -----------------------------------------------------------------------

  /** The device moves a QP to ERR itself (a WQE error, a CQ error): the provider flushes. */
  moveToErr(qp: QpObj): void {
    if (qp.state === QpState.Err) return;
    try {
      this.core.verbs.modifyQp(qp.qpn, { qpState: QpState.Err }, QpAttr.STATE);
    } catch {
      // The provider has the QP in error already, or gone: the device's view is what matters.
    }
    this.stateChanged(qp, qp.state, QpState.Err);
  }

  /** After MODIFY_QP or a device-made change: effects of §7.12. */
  stateChanged(qp: QpObj, from: QpState, to: QpState): void {
    qp.state = to;
    if (to === QpState.Reset) {
      this.returnAll(qp.sq);
      this.returnAll(qp.rq);
      qp.flushVendor = VendorErr.FLUSH_QP_ERR;
    }
    if (to === QpState.Err && from !== QpState.Err && qp.srq !== 0) this.core.events.raise(EventType.QpLastWqeReached, qp.qpn);
    this.wake(qp);
  }

  private wake(qp: QpObj): void {
    this.core.transport.setPending(qp.sq.vq);
    this.core.transport.setPending(qp.rq.vq);
  }

  /** Give back every buffer of the queue (available ones too), without completions (§7.12–§7.20). */
  returnAll(wq: WorkQueue): void {
    this.pull(wq);
    const { entries, pending } = wq.takeAll();
    for (const e of entries) {
      this.core.inFlight.delete(e.seq);
      this.giveBack(wq.vq, e.chain, e.queue);
    }
    for (const p of pending) this.giveBack(wq.vq, p.chain, p.queue);
  }

  /** A queue is being reset: chains popped from it and not yet decoded are void. */
  queueReset(wq: WorkQueue, queue: DeviceQueue): void {
    const keep = wq.pending.filter((p) => p.queue !== queue);
    wq.pending.length = 0;
    wq.pending.push(...keep);
  }

  /** §11.4: the CQ enters error; every QP completing into it goes to ERR. */
  private cqOverrun(cq: DeviceCq, _reason: string): void {
    if (cq.error) return;
    cq.fail();
    this.core.events.raise(EventType.CqErr, cq.index);
    for (const qpn of cq.users) {
      const qp = this.core.qps.get(qpn);
      if (qp === undefined || qp.state === QpState.Err) continue;
      qp.flushVendor = VendorErr.FLUSH_CQ_OVERRUN;
      this.moveToErr(qp);
      this.core.events.raise(EventType.QpFatal, qpn);
    }
  }

  /** Whether a work request in flight names the MR (REREG_PHYS_MR CHANGE_PD, §7.19). */
  mrInFlight(mr: MrObj): boolean {
    for (const rec of this.core.inFlight.values()) if (rec.entry.lkeys.includes(mr.lkey)) return true;
    return false;
  }

  // ---- publishing --------------------------------------------------------------------------

  /** Write pending events into the event queue. */
  drainEvents(): void {
    const vq = this.core.transport.map.event;
    if (vq < 0) return;
    if (this.core.events.drain(this.core.transport.queue(vq), this.memory, this.dm.dirtyLog)) this.touched.add(vq);
  }

  /** Queues with used entries or events not yet published (a durable backend commits them first). */
  unpublished(): ReadonlySet<number> {
    return this.touched;
  }

  /** Publish `vq`'s used entries at the end of the next pass (ones put back after a restore). */
  markUnpublished(vq: number): void {
    this.touched.add(vq);
  }

  /**
   * Publish used entries of every touched queue and send the notifications due (§5.5). Work
   * queues go before completion queues: a driver in another thread that sees a CQE must find its
   * WQE's ring slot returned already, or a post in answer to the CQE would find the ring full.
   */
  publish(): void {
    const { transport } = this.core;
    for (const vq of this.touched) if (transport.map.role(vq)?.kind !== 'cq') this.publishQueue(vq);
    for (const vq of this.touched) if (transport.map.role(vq)?.kind === 'cq') this.publishQueue(vq);
    this.touched.clear();
  }

  private publishQueue(vq: number): void {
    const { transport } = this.core;
    const queue = transport.queue(vq);
    if (queue === null) return;
    const wants = queue.flush();
    const role = transport.map.role(vq);
    if (role?.kind === 'cq') {
      const cq = this.core.cqs[role.index];
      // Completion queues interrupt exactly for a CQE that triggered the arm (§5.5, §11.3):
      // arming is their suppression, so the ring's own (used_event, which an unarmed CQE would
      // use up) does not apply.
      if (cq !== null && cq.notifyDue) {
        cq.notifyDue = false;
        transport.call(vq);
      }
    } else if (wants) {
      transport.call(vq);
    }
  }

  /** Forget everything (device reset). */
  clear(): void {
    this.touched.clear();
  }
}

function peekHeader(chain: DescriptorChain, memory: Uint8Array): { wrId: bigint; opcode: number } {
  const header = chain.reader(memory).readExact(Math.min(9, chain.readBytes)) as Uint8Array;
  const v = new DataView(header.buffer);
  return { wrId: header.length >= 8 ? u64(v, 0) : 0n, opcode: header.length >= 9 ? v.getUint8(8) : 0 };
}

/** CQE opcode of a send WQE's opcode byte (unknown ones report SEND). */
function sendOpcode(op: number): CqeOpcode {
  return sendCqeOpcode(op as WrOpcode);
}
