// A Link wrapper that misbehaves like a bad network, reproducibly: it drops, duplicates,
// reorders and delays a given fraction of the packets it sends, choosing with a seeded PRNG so a
// failing run can be replayed. It wraps any Link (the loopback hub in tests, UDP sockets later).
import type { Link, PacketHandler } from '../nic/link.js';
import { ROCE_UDP_PORT } from '../nic/link.js';

export interface LossyOptions {
  /** Fraction of packets dropped, in [0, 1]. */
  drop?: number;
  /** Fraction sent twice. */
  duplicate?: number;
  /** Fraction held back and sent after the next packet (or after `reorderFlushMs` if none comes). */
  reorder?: number;
  /** Fraction delayed by up to `maxDelayMs`. */
  delay?: number;
  maxDelayMs?: number;
  reorderFlushMs?: number;
  /** PRNG seed (any 32-bit integer). */
  seed?: number;
  /** Misbehave from the start (default true); `enabled` switches it at run time. */
  enabled?: boolean;
}

/** mulberry32: small, fast and good enough to pick which packets misbehave. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fraction(name: string, value: number | undefined): number {
  const v = value ?? 0;
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be a fraction in [0, 1], got ${value}`);
  return v;
}

interface Held {
  packet: Uint8Array;
  dstIp: string;
  dstPort: number;
  timer: NodeJS.Timeout;
}

export class LossyLink implements Link {
  readonly counters = { sent: 0, dropped: 0, duplicated: 0, reordered: 0, delayed: 0 };
  /** While false every packet passes straight through (a test turns loss on around one event). */
  enabled: boolean;
  private readonly random: () => number;
  private readonly drop: number;
  private readonly duplicate: number;
  private readonly reorder: number;
  private readonly delay: number;
  private readonly maxDelayMs: number;
  private readonly reorderFlushMs: number;
  private held: Held | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly inner: Link, options: LossyOptions = {}) {
    this.drop = fraction('drop', options.drop);
    this.duplicate = fraction('duplicate', options.duplicate);
    this.reorder = fraction('reorder', options.reorder);
    this.delay = fraction('delay', options.delay);
    this.maxDelayMs = options.maxDelayMs ?? 2;
    this.reorderFlushMs = options.reorderFlushMs ?? 1;
    this.random = seededRandom(options.seed ?? 1);
    this.enabled = options.enabled ?? true;
  }

  /** Packets delayed or held back for reordering that have not been sent on yet. */
  get pending(): number {
    return this.timers.size + (this.held === null ? 0 : 1);
  }

  get localIp(): string {
    return this.inner.localIp;
  }
  get localPort(): number {
    return this.inner.localPort;
  }

  send(packet: Uint8Array, dstIp: string, dstPort = ROCE_UDP_PORT): void {
    if (this.closed) return;
    this.counters.sent++;
    if (!this.enabled) {
      this.inner.send(packet, dstIp, dstPort);
      this.release();
      return;
    }
    if (this.random() < this.drop) {
      this.counters.dropped++;
      return;
    }
    // The caller may reuse its bytes once send returns; anything sent later needs a copy.
    if (this.random() < this.delay) {
      this.counters.delayed++;
      const copy = packet.slice();
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.closed) this.inner.send(copy, dstIp, dstPort);
      }, this.random() * this.maxDelayMs);
      this.timers.add(timer);
      return;
    }
    if (this.held === null && this.random() < this.reorder) {
      this.counters.reordered++;
      const copy = packet.slice();
      const timer = setTimeout(() => this.release(), this.reorderFlushMs);
      this.held = { packet: copy, dstIp, dstPort, timer };
      return;
    }
    this.inner.send(packet, dstIp, dstPort);
    if (this.random() < this.duplicate) {
      this.counters.duplicated++;
      this.inner.send(packet, dstIp, dstPort);
    }
    this.release();
  }

  onPacket(handler: PacketHandler): void {
    this.inner.onPacket(handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.held !== null) clearTimeout(this.held.timer);
    this.held = null;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.inner.close();
  }

  /** Send the held-back packet, now behind the one that overtook it. */
  private release(): void {
    const h = this.held;
    if (h === null) return;
    this.held = null;
    clearTimeout(h.timer);
    if (!this.closed) this.inner.send(h.packet, h.dstIp, h.dstPort);
  }
}
