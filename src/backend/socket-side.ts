// The socket side of a durable device (socket: 'main'): the VM's UDP socket held by the thread
// that owns the device (the pool's), not by the worker that runs it. Arriving datagrams are
// copied into the device's receive ring; datagrams the backend puts in its send ring leave through
// the socket (batched, as every UdpLink sends). The address stays bound while the device's
// backends die and come back, so nothing needs binding again, and what arrives meanwhile waits
// in the ring for the next backend (ring-link.ts is the other end). For a migration the address
// is released here and bound on the destination (R7), as a VM's own MovableLink is.
import { MovableLink } from '../net/movable-link.js';
import { UdpLink } from '../net/udp-link.js';
import type { Link, LinkAddress } from '../nic/link.js';
import { AddressCache } from '../nic/roce/icrc.js';
import { PacketRing } from './packet-ring.js';

/** Datagrams sent per turn before the pump lets the event loop run again. */
const TX_BATCH = 256;

export class SocketSide {
  readonly rx: PacketRing;
  readonly tx: PacketRing;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly pump: Promise<void>;
  private readonly from = new AddressCache();
  private readonly to = new AddressCache();

  private constructor(
    /** The VM's address: released and bound again as it migrates. */
    private readonly address: MovableLink,
    /** What packets go through: the address, under any wrapper (a host agent's counters, a loss switch). */
    private readonly link: Link,
    ringBytes: number,
  ) {
    this.rx = PacketRing.create(ringBytes);
    this.tx = PacketRing.create(ringBytes);
    link.onPacket((bytes: Uint8Array, from: LinkAddress) => {
      if (this.rx.push(bytes, this.from.toU32(from.ip), from.port)) this.rx.ring();
    });
    this.pump = this.sendLoop();
  }

  /**
   * Bind the VM's address here (unless `bind` is false: a migrated VM binds once restored).
   * Rejects with NetError as UdpLink.open does (ADDRESS_IN_USE ...).
   */
  static async open(options: { ip: string; port?: number; batched?: boolean; ringBytes: number; bind?: boolean; wrapLink?: (link: Link) => Link }): Promise<SocketSide> {
    const address = new MovableLink(options.ip, () => UdpLink.open({ ip: options.ip, port: options.port, batched: options.batched }), options.port);
    if (options.bind ?? true) await address.bind();
    return new SocketSide(address, options.wrapLink?.(address) ?? address, options.ringBytes);
  }

  /** R7: give the address up (once the sends handed to the socket have left); packets sent meanwhile are dropped. */
  release(): Promise<void> {
    return this.address.release();
  }

  /** Take the address again (NetError ADDRESS_IN_USE while another host holds it). */
  bind(): Promise<void> {
    return this.address.bind();
  }

  /** The rings, for the backend's RingLink: it sends into `tx` and reads `rx`. */
  get rings(): { tx: SharedArrayBuffer; rx: SharedArrayBuffer } {
    return { tx: this.tx.buffer, rx: this.rx.buffer };
  }

  /** Datagrams dropped because a ring was full: arriving (rx) and leaving (tx). */
  get dropped(): { rx: number; tx: number } {
    return { rx: this.rx.dropped, tx: this.tx.dropped };
  }

  /** Close the socket (the address is free once this resolves). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.tx.ring();
      await this.pump;
      await this.link.close();
    })();
    return this.closing;
  }

  private async sendLoop(): Promise<void> {
    const send = (bytes: Uint8Array, ip: number, port: number) => this.link.send(bytes, this.to.toText(ip), port);
    while (!this.closed) {
      const seen = this.tx.bell;
      if (this.tx.pop(send, TX_BATCH) === TX_BATCH) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      if (this.tx.pending === 0) {
        // Atomics.waitAsync alone does not keep the event loop alive; the socket does.
        await this.tx.wait(seen, 1000);
      }
    }
  }
}
