// The link a durable backend's provider sends through (device-backend.ts): no packet leaves
// before the state that produced it is committed to the journal. Sends of one turn are copied
// and held; at the end of the turn (a microtask) the gate commits, unless a commit already
// covered them (the device's own, at the end of a pass), and hands them to the link below.
// A peer therefore never sees an acknowledgement, a response or a PSN that a backend restored
// from the journal would not know. If the commit fails (the backend lost the device, or its state
// no longer fits the journal), the held packets are dropped, as a wire would, and `onFailure` is
// told: the device stops.
import type { Link, LinkAddress, PacketHandler } from '../nic/link.js';

interface Held {
  bytes: Uint8Array;
  ip: string;
  port: number | undefined;
}

export interface CommitGateCounters {
  /** Commits the gate made itself (sends a device pass had not already covered). */
  commits: number;
  /** Packets released after a commit. */
  released: number;
  /** Packets dropped because a commit failed. */
  dropped: number;
}

export class CommitGate implements Link {
  private held: Held[] = [];
  private scheduled = false;
  /** Whether packets are held that no commit has covered yet. */
  private uncovered = false;
  private failed = false;
  readonly counters: CommitGateCounters = { commits: 0, released: 0, dropped: 0 };

  constructor(
    private readonly inner: Link,
    private readonly commit: () => void,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  get localIp(): string {
    return this.inner.localIp;
  }

  get localPort(): number {
    return this.inner.localPort;
  }

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    if (this.failed) {
      this.counters.dropped++;
      return;
    }
    this.held.push({ bytes: packet.slice(), ip: dstIp, port: dstPort });
    this.uncovered = true;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.release());
    }
  }

  /** A commit was made: every packet held now is covered by it. */
  committed(): void {
    this.uncovered = false;
  }

  onPacket(handler: PacketHandler): void {
    this.inner.onPacket((packet: Uint8Array, from: LinkAddress) => {
      if (!this.failed) handler(packet, from);
    });
  }

  /** Send nothing more: what is held and what comes is dropped (the backend lost the device). */
  halt(): void {
    this.failed = true;
    this.counters.dropped += this.held.length;
    this.held = [];
  }

  /** Let what is held leave (committed first), then close the link below. */
  async close(): Promise<void> {
    if (this.held.length > 0 && !this.failed) this.release();
    this.failed = true;
    await this.inner.close();
  }

  private release(): void {
    this.scheduled = false;
    const batch = this.held;
    this.held = [];
    if (this.failed) {
      this.counters.dropped += batch.length;
      return;
    }
    if (this.uncovered) {
      try {
        this.commit();
        this.counters.commits++;
        this.uncovered = false;
      } catch (err) {
        this.failed = true;
        this.counters.dropped += batch.length;
        this.onFailure(err);
        return;
      }
    }
    for (const p of batch) this.inner.send(p.bytes, p.ip, p.port);
    this.counters.released += batch.length;
  }
}
