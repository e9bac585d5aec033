// Completion queues (docs/device-spec.md §11): CQEs go into the device-writable buffers the driver
// makes available on the CQ's virtqueue, in the order the device generates them. A CQE with no
// buffer to go to waits in a backlog of at most `cqe` entries; one more is a CQ overrun (§11.4).
// Used-buffer notifications are sent only for a CQE that triggers the CQ's arm (§11.3, §5.5).
import type { WriteLog } from '../memory/write-log.js';
import type { DescriptorChain } from '../virtio/chain.js';
import type { DeviceQueue } from '../virtio/queue.js';
import { CQE_BYTES, NotifyFlag } from './abi.js';
import { encodeCqe, type Cqe } from './cqe.js';

interface Pending {
  bytes: Uint8Array;
  /** Triggers a SOLICITED arm: a receive with the SE bit, or any unsuccessful completion. */
  solicitedOrError: boolean;
}

/** What CQ delivery needs from the device. */
export interface CqSink {
  /** The CQ's virtqueue, or null while it is not enabled. */
  queueOf(cq: DeviceCq): DeviceQueue | null;
  /** Remember to publish this queue's used entries at the end of the pass. */
  touched(cq: DeviceCq): void;
  /** Where the device marks the guest memory it writes (the dirty log, R4). */
  readonly log: WriteLog;
  /** The CQ overran or got a buffer too short for a CQE (§11.4). */
  overrun(cq: DeviceCq, reason: string): void;
  readonly memory: Uint8Array;
}

/** Where a CQE that goes straight into a buffer is encoded (deliver is synchronous). */
const SCRATCH = new Uint8Array(CQE_BYTES);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);

export class DeviceCq {
  /** 0, NotifyFlag.SOLICITED or NotifyFlag.NEXT_COMPLETION. */
  armed = 0;
  /** Overrun: every later CQE is discarded until the CQ is destroyed. */
  error = false;
  /** CQEs written since creation, modulo 2^32 (REQ_NOTIFY_CQ's answer). */
  cqesWritten = 0;
  /** A CQE written in this pass triggered the arm: notify when the queue is published. */
  notifyDue = false;
  private readonly backlog: Pending[] = [];
  /** QPs (QPNs) whose send or receive queue completes here: BUSY on destroy, ERR on overrun. */
  readonly users = new Set<number>();

  constructor(readonly index: number, readonly depth: number, readonly verbsCq: number) {}

  get backlogLength(): number {
    return this.backlog.length;
  }

  /** §11.3: NEXT_COMPLETION widens SOLICITED; SOLICITED does not narrow NEXT_COMPLETION. */
  arm(flags: number): void {
    if (flags === NotifyFlag.NEXT_COMPLETION || this.armed === 0) this.armed = flags;
  }

  /** Queue a CQE and write what the queue's buffers take. */
  deliver(sink: CqSink, cqe: Cqe, solicitedOrError: boolean): void {
    if (this.error) return;
    if (this.backlog.length === 0) {
      // Nothing waits ahead of it: straight into the next buffer, encoded in scratch (no copy
      // kept), when there is one. Otherwise it joins the backlog as below.
      const queue = sink.queueOf(this);
      const chains = queue === null ? [] : queue.pop(1);
      if (queue !== null && chains.length === 1) {
        sink.touched(this);
        if (!this.refuse(sink, queue, chains[0])) this.put(sink, queue, chains[0], encodeCqe(cqe, SCRATCH, SCRATCH_VIEW), solicitedOrError);
        return;
      }
    }
    if (this.backlog.length >= this.depth) {
      sink.overrun(this, `backlog of ${this.depth} CQEs is full`);
      return;
    }
    this.backlog.push({ bytes: encodeCqe(cqe), solicitedOrError });
    this.drain(sink);
  }

  /** Write backlogged CQEs into available buffers, in order. May throw VirtioError (ring fault). */
  drain(sink: CqSink): void {
    const queue = sink.queueOf(this);
    if (queue === null) return;
    // Each round takes at least one buffer, and the ring holds at most `size` of them.
    for (let round = 0; round <= queue.size && this.backlog.length > 0 && !this.error; round++) {
      const chains = queue.pop(this.backlog.length);
      if (chains.length === 0) {
        // Out of buffers with CQEs waiting: ask for a kick when the driver posts more; if some
        // raced in meanwhile, take them now (virtio 1.2 2.7.10).
        if (queue.enableNotification()) continue;
        break;
      }
      sink.touched(this);
      for (const chain of chains) this.write(sink, queue, chain);
    }
  }

  private write(sink: CqSink, queue: DeviceQueue, chain: DescriptorChain): void {
    if (this.refuse(sink, queue, chain)) return;
    const next = this.backlog.shift() as Pending;
    this.put(sink, queue, chain, next.bytes, next.solicitedOrError);
  }

  /** Give back a buffer no CQE goes into: the CQ is in error, or the buffer is too short (an overrun). */
  private refuse(sink: CqSink, queue: DeviceQueue, chain: DescriptorChain): boolean {
    if (this.error) {
      queue.addUsed(chain, 0);
      return true;
    }
    if (chain.writeBytes < CQE_BYTES) {
      queue.addUsed(chain, 0);
      sink.overrun(this, `CQE buffer of ${chain.writeBytes} writable bytes`);
      return true;
    }
    return false;
  }

  /** Write an encoded CQE into the buffer, mark it used, and see whether it triggers the arm. */
  private put(sink: CqSink, queue: DeviceQueue, chain: DescriptorChain, bytes: Uint8Array, solicitedOrError: boolean): void {
    const w = chain.writer(sink.memory);
    w.write(bytes, sink.log);
    queue.addUsed(chain, CQE_BYTES);
    this.cqesWritten = (this.cqesWritten + 1) >>> 0;
    if (this.armed === NotifyFlag.NEXT_COMPLETION || (this.armed === NotifyFlag.SOLICITED && solicitedOrError)) {
      this.armed = 0;
      this.notifyDue = true;
    }
  }

  /** The CQEs waiting for a buffer, oldest first (migration, R9). */
  backlogSnapshot(): { bytes: Uint8Array; solicitedOrError: boolean }[] {
    return this.backlog.map((p) => ({ bytes: p.bytes.slice(), solicitedOrError: p.solicitedOrError }));
  }

  /** Restore a migrated backlog on a new CQ. */
  loadBacklog(entries: readonly { bytes: Uint8Array; solicitedOrError: boolean }[]): void {
    for (const e of entries) this.backlog.push({ bytes: e.bytes.slice(), solicitedOrError: e.solicitedOrError });
  }

  /** Enter error (§11.4): the backlog and all later CQEs are discarded. */
  fail(): void {
    this.error = true;
    this.backlog.length = 0;
  }

  /**
   * Give back every buffer still available on the queue, used with length 0 (DESTROY_CQ, §7.5),
   * to be published with the pass's other used entries (`publishLater`).
   */
  returnBuffers(queue: DeviceQueue, publishLater: () => void): number {
    let n = 0;
    // Each round takes at least one chain and the ring holds at most `size`: bounded.
    for (let round = 0; round <= queue.size; round++) {
      const chains = queue.pop();
      if (chains.length === 0) break;
      for (const chain of chains) queue.addUsed(chain, 0);
      n += chains.length;
      publishLater();
    }
    return n;
  }
}
