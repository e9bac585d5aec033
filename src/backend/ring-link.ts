// The link a device backend sends and receives through when another thread holds the VM's UDP
// socket (socket-side.ts): datagrams go out through one packet ring and come in through another
// (packet-ring.ts), shared memory both ways. The socket — and so the VM's address — stays bound
// while backends come and go; what arrives while none runs waits in the ring (or is dropped when
// it is full, counted), and the next backend reads it.
import type { Link, LinkAddress, PacketHandler } from '../nic/link.js';
import { AddressCache } from '../nic/roce/icrc.js';
import { PacketRing } from './packet-ring.js';

/** Datagrams read per turn before the link lets the event loop run again. */
const RX_BATCH = 256;

export class RingLink implements Link {
  private readonly tx: PacketRing;
  private readonly rx: PacketRing;
  private handler: PacketHandler | null = null;
  private closed = false;
  private loop: Promise<void> | null = null;
  private readonly to = new AddressCache();
  private readonly from = new AddressCache();

  constructor(readonly localIp: string, readonly localPort: number, rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer }) {
    this.tx = new PacketRing(rings.tx);
    this.rx = new PacketRing(rings.rx);
  }

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    if (this.closed) return;
    if (this.tx.push(packet, this.to.toU32(dstIp), dstPort ?? this.localPort)) this.tx.ring();
  }

  /**
   * Resolves once the socket's side has taken every datagram sent so far (the send ring is empty),
   * or after `deadlineMs`: what a release waits for before the socket is given up.
   */
  async settled(deadlineMs = 1000): Promise<void> {
    const until = Date.now() + deadlineMs;
    while (this.tx.pending > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 1));
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
    this.loop ??= this.receive();
  }

  close(): Promise<void> {
    this.closed = true;
    this.rx.ring();
    return this.loop ?? Promise.resolve();
  }

  private async receive(): Promise<void> {
    const from: LinkAddress = { ip: '', port: 0 };
    const deliver = (bytes: Uint8Array, ip: number, port: number) => {
      from.ip = this.from.toText(ip);
      from.port = port;
      this.handler?.(bytes, from);
    };
    while (!this.closed) {
      const seen = this.rx.bell;
      if (this.rx.pop(deliver, RX_BATCH) === RX_BATCH) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      if (this.rx.pending === 0) await this.rx.wait(seen, 1000);
    }
  }
}
