// One work queue as the device sees it (a QP's send or receive queue, or an SRQ): chains popped
// from its virtqueue and not yet decoded, and the work requests in flight, each holding its chain
// until it retires (docs/device-spec.md §10.5). A QP's queues retire strictly in posting order, so
// its used ring and its CQEs are in posting order; an SRQ retires in completion order, since
// different QPs consume its WQEs.
import { DescriptorChain } from '../virtio/chain.js';
import type { DeviceQueue } from '../virtio/queue.js';
import type { Cqe } from './cqe.js';

/** A work request the device holds. */
export interface WqEntry {
  /** The device's own sequence number: the wrId the provider sees. */
  readonly seq: number;
  /** The chain (a private copy of its record) and the queue object it came from. */
  readonly chain: DescriptorChain;
  readonly queue: DeviceQueue;
  /** The guest's wr_id. */
  wrId: bigint;
  /** A CQE is written for it (signalled, or an error, or any receive). */
  signaled: boolean;
  /** Filled when the request completed (by the provider, or by the device for malformed WQEs). */
  cqe: Cqe | null;
  /** A device-detected WQE error: the QP changes state when this entry retires. */
  wqeError: boolean;
  /** Where its CQE goes (device CQ index), or -1 until known (SRQ entries). */
  cq: number;
  /** Solicited event bit of the received message, for SOLICITED arming (§11.3). */
  solicited: boolean;
  /** lkeys its SGEs name (REREG_PHYS_MR's BUSY check). */
  lkeys: number[];
}

/**
 * Copy the chain records one pop returned out of the queue's record buffer, which the next pop
 * overwrites. A pop's records lie end to end, so they share one copy (one allocation per pop, not
 * per chain); records that do not (no queue writes them so) are copied one by one.
 */
export function detachChains(chains: readonly DescriptorChain[], memory: Uint8Array): DescriptorChain[] {
  if (chains.length === 0) return [];
  const first = chains[0].recordOff;
  let end = first;
  for (const c of chains) {
    if (c.recordOff !== end) return chains.map((one) => detachChains([one], memory)[0]);
    end += c.recordBytes;
  }
  const view = new DataView(memory.slice(first, end).buffer);
  return chains.map((c) => new DescriptorChain(view, c.recordOff - first));
}

export class WorkQueue {
  /** Popped chains not yet decoded (the QP's state does not let them run yet). */
  readonly pending: { chain: DescriptorChain; queue: DeviceQueue }[] = [];
  private readonly entries: WqEntry[] = [];
  /** Set while a device-detected WQE error waits to retire: nothing after it is started. */
  halted = false;

  constructor(readonly vq: number, readonly inOrder: boolean) {}

  get inFlight(): number {
    return this.entries.length;
  }

  push(entry: WqEntry): void {
    this.entries.push(entry);
  }

  /** Entries that can retire now: the completed prefix (in order), or every completed one. */
  retire(): WqEntry[] {
    if (this.inOrder) {
      let n = 0;
      while (n < this.entries.length && this.entries[n].cqe !== null) n++;
      return this.entries.splice(0, n);
    }
    const done = this.entries.filter((e) => e.cqe !== null);
    if (done.length > 0) {
      const rest = this.entries.filter((e) => e.cqe === null);
      this.entries.length = 0;
      this.entries.push(...rest);
    }
    return done;
  }

  /** Everything held, in posting order, left in place (migration, R9). */
  snapshot(): { entries: readonly WqEntry[]; pending: readonly { chain: DescriptorChain; queue: DeviceQueue }[] } {
    return { entries: [...this.entries], pending: [...this.pending] };
  }

  /** Everything held, in posting order, for a reset or destroy; the queue is left empty. */
  takeAll(): { entries: WqEntry[]; pending: { chain: DescriptorChain; queue: DeviceQueue }[] } {
    const entries = this.entries.splice(0);
    const pending = this.pending.splice(0);
    this.halted = false;
    return { entries, pending };
  }
}
