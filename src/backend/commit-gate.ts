// The link a durable backend's provider sends through (device-backend.ts): no packet leaves
// before the state that produced it is committed to the journal. Sends are copied and held; the
// first one held rings the backend's doorbell (`schedule`), and the backend's next turn commits
// the device once — for the passes it ran and for everything held — and then releases them. A peer
// therefore never sees an acknowledgement, a response or a PSN that a backend restored from the
// journal would not know. A backend that lost the device halts the gate: what is held and what
// comes is dropped, as a wire would drop it.
import type { Link, LinkAddress, PacketHandler } from '../nic/link.js';

/** A held packet: where its copy is in the arena, and where it goes. */
interface Held {
  off: number;
  len: number;
  ip: string;
  port: number | undefined;
}

/** The arena's first size; it doubles when a turn holds more. */
const ARENA_BYTES = 256 * 1024;

export interface CommitGateCounters {
  /** Packets released after a commit. */
  released: number;
  /** Packets dropped because the backend lost the device or stopped. */
  dropped: number;
}

export class CommitGate implements Link {
  private held: Held[] = [];
  /** The copies of the held packets, one after another; reused from the start once they left. */
  private arena = new Uint8Array(ARENA_BYTES);
  private used = 0;
  private halted = false;
  readonly counters: CommitGateCounters = { released: 0, dropped: 0 };

  constructor(private readonly inner: Link, private readonly schedule: () => void) {}

  get localIp(): string {
    return this.inner.localIp;
  }

  get localPort(): number {
    return this.inner.localPort;
  }

  /** Whether packets wait for a commit. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    if (this.halted) {
      this.counters.dropped++;
      return;
    }
    if (this.used + packet.length > this.arena.length) {
      const grown = new Uint8Array(Math.max(2 * this.arena.length, this.used + packet.length));
      grown.set(this.arena.subarray(0, this.used));
      this.arena = grown;
    }
    this.arena.set(packet, this.used);
    this.held.push({ off: this.used, len: packet.length, ip: dstIp, port: dstPort });
    this.used += packet.length;
    if (this.held.length === 1) this.schedule();
  }

  /** Hand every held packet to the link below: call only after a commit that covers them. */
  release(): void {
    if (this.halted || this.held.length === 0) return;
    // The link below copies what it is handed (Link.send), so the arena is free once this returns.
    for (const p of this.held) this.inner.send(this.arena.subarray(p.off, p.off + p.len), p.ip, p.port);
    this.counters.released += this.held.length;
    this.held = [];
    this.used = 0;
  }

  onPacket(handler: PacketHandler): void {
    this.inner.onPacket((packet: Uint8Array, from: LinkAddress) => {
      if (!this.halted) handler(packet, from);
    });
  }

  /** Send nothing more: what is held and what comes is dropped. */
  halt(): void {
    this.halted = true;
    this.counters.dropped += this.held.length;
    this.held = [];
    this.used = 0;
  }

  /** Close the link below; held packets are dropped (release() them first to send them). */
  close(): Promise<void> {
    this.halt();
    return this.inner.close();
  }
}
