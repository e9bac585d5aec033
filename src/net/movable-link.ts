// The network attachment of a VM whose address moves between hosts (R7). The provider keeps one
// Link for its whole life, this one; underneath, the socket that holds the VM's address comes
// and goes: `release()` closes it, so another host can bind the address, and `bind()` opens a
// new one on the same address (on the destination, after the source released it). While no
// socket is held, a packet sent is lost and counted, as on a wire whose far end moved (R8: the
// transport's go-back-N and RNR retry recover it), and nothing arrives. A provider can therefore
// be built, and its state restored, before the address is bound.
import { type Link, type LinkAddress, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { checkIpv4 } from './address.js';
import { NetError, NetErrorCode } from './errors.js';

/** Opens a link on the VM's address (a UdpLink in production; the loopback hub in tests). */
export type LinkOpener = () => Promise<Link>;

export interface MovableLinkCounters {
  binds: number;
  releases: number;
  /** Packets handed to the socket holding the address. */
  sent: number;
  /** Packets handed to send while no socket held the address (lost). */
  sentWhileReleased: number;
}

/** A link whose pending sends can be waited for (UdpLink). */
interface Settling {
  settled(): Promise<void>;
}

function canSettle(link: Link): link is Link & Settling {
  return typeof (link as Partial<Settling>).settled === 'function';
}

export class MovableLink implements Link {
  private inner: Link | null = null;
  private handler: PacketHandler | null = null;
  private busy = false;
  private closed = false;
  readonly counters: MovableLinkCounters = { binds: 0, releases: 0, sent: 0, sentWhileReleased: 0 };

  /** Not bound yet: call bind(). `port` is the UDP port each socket binds (4791 by default). */
  constructor(readonly localIp: string, private readonly open: LinkOpener, private readonly port = ROCE_UDP_PORT) {
    checkIpv4(localIp, 'local address');
  }

  /** The source port of the socket that holds the address, or the one it will bind. */
  get localPort(): number {
    return this.inner?.localPort ?? this.port;
  }

  get isBound(): boolean {
    return this.inner !== null;
  }

  /**
   * Take the address: open a socket on it. Rejects with NetError as the opener does (ADDRESS_IN_USE
   * while another host still holds it), or CLOSED if already bound, binding or closed.
   */
  async bind(): Promise<void> {
    if (this.closed || this.busy || this.inner !== null) {
      throw new NetError(NetErrorCode.Closed, `${this.localIp}: ${this.closed ? 'closed' : 'already bound or binding'}`);
    }
    this.busy = true;
    try {
      const link = await this.open();
      if (link.localIp !== this.localIp) {
        await link.close();
        throw new NetError(NetErrorCode.InvalidAddress, `the opener bound ${link.localIp}, not ${this.localIp}`);
      }
      link.onPacket((packet: Uint8Array, from: LinkAddress) => this.handler?.(packet, from));
      this.inner = link;
      this.counters.binds++;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Give the address up: let the sends already handed over leave, then close the socket. When
   * this resolves another socket can bind the address. Releasing an unbound link does nothing.
   */
  async release(): Promise<void> {
    const link = this.inner;
    if (link === null) return;
    this.inner = null;
    if (canSettle(link)) await settledWithin(link, SETTLE_DEADLINE_MS);
    await link.close();
    this.counters.releases++;
  }

  send(packet: Uint8Array, dstIp: string, dstPort: number = ROCE_UDP_PORT): void {
    if (this.inner === null) {
      this.counters.sentWhileReleased++;
      return;
    }
    this.counters.sent++;
    this.inner.send(packet, dstIp, dstPort);
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** Resolves once the sends handed to the current socket so far have left (or at once). */
  settled(): Promise<void> {
    return this.inner !== null && canSettle(this.inner) ? this.inner.settled() : Promise.resolve();
  }

  /** Release the address for good; bind() refuses from now on. */
  async close(): Promise<void> {
    this.closed = true;
    await this.release();
  }
}

/**
 * How long release() waits for sends already handed to the socket. They normally leave within a
 * turn or two; a send whose completion never comes must not keep the address held.
 */
export const SETTLE_DEADLINE_MS = 1000;

function settledWithin(link: { settled(): Promise<void> }, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([link.settled(), late]).finally(() => clearTimeout(timer));
}
