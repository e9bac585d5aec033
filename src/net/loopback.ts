// An in-process network: a hub that attaches one Link per IPv4 address and carries packets
// between them. Delivery is asynchronous (setImmediate), as on a wire, so a sender is never
// re-entered by its own packet or by the answer to it. Closing an address makes packets sent
// to it vanish, which is what a VM's address looks like while it moves (R7, R8).
import { type Link, type LinkAddress, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { ipv4 } from '../nic/roce/icrc.js';

export class LoopbackHub {
  private readonly links = new Map<string, LoopbackLink>();
  /** Packets handed to the hub, and those that found nobody at their address. */
  readonly counters = { sent: 0, delivered: 0, lost: 0 };

  /** A Link bound to `ip`; the address must not be in use. */
  attach(ip: string, port = ROCE_UDP_PORT): LoopbackLink {
    ipv4(ip); // throws RangeError on a malformed address
    if (this.links.has(ip)) throw new Error(`address ${ip} is already attached to the hub`);
    const link = new LoopbackLink(this, ip, port);
    this.links.set(ip, link);
    return link;
  }

  /** @internal Link.send: copy now, deliver later. */
  carry(packet: Uint8Array, from: LinkAddress, dstIp: string, dstPort: number): void {
    this.counters.sent++;
    const copy = packet.slice();
    setImmediate(() => {
      const to = this.links.get(dstIp);
      if (to === undefined || to.localPort !== dstPort) {
        this.counters.lost++;
        return;
      }
      this.counters.delivered++;
      to.deliver(copy, from);
    });
  }

  /**
   * Put a packet on the wire as if it came from `from`, which need not be attached: what an
   * attacker on the segment can do (tests inject forged and corrupted packets this way).
   */
  inject(packet: Uint8Array, from: LinkAddress, dstIp: string, dstPort = ROCE_UDP_PORT): void {
    this.carry(packet, from, dstIp, dstPort);
  }

  /** @internal */
  detach(link: LoopbackLink): void {
    if (this.links.get(link.localIp) === link) this.links.delete(link.localIp);
  }
}

export class LoopbackLink implements Link {
  private handler: PacketHandler | null = null;
  private closed = false;

  constructor(private readonly hub: LoopbackHub, readonly localIp: string, readonly localPort: number) {}

  send(packet: Uint8Array, dstIp: string, dstPort = ROCE_UDP_PORT): void {
    // A closed socket sends nothing; like a wire, this is a loss and not an error.
    if (this.closed) return;
    this.hub.carry(packet, { ip: this.localIp, port: this.localPort }, dstIp, dstPort);
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** @internal */
  deliver(packet: Uint8Array, from: LinkAddress): void {
    if (!this.closed) this.handler?.(packet, from);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.hub.detach(this);
  }
}
