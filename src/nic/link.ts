// What the RoCE engine sends packets through: one VM function's network attachment, bound to
// the VM's IPv4 address (its GID, R7) on UDP port 4791. Implementations: an in-process hub for
// unit tests, real UDP sockets (src/net), and wrappers that lose, duplicate, reorder and delay
// packets or capture them to a pcap file.

import { ROCE_UDP_PORT } from './roce/icrc.js';

export { ROCE_UDP_PORT };

export type PacketHandler = (packet: Uint8Array, from: LinkAddress) => void;

/** Where a packet came from: what a receiver needs to rebuild the ICRC's IP/UDP context. */
export interface LinkAddress {
  ip: string;
  port: number;
}

export interface Link {
  /** The local IPv4 address: the VM's GID. */
  readonly localIp: string;
  /** The UDP source port packets leave from. */
  readonly localPort: number;
  /**
   * Send one RoCE v2 packet (BTH through ICRC) to `dstIp`. Never throws for network reasons:
   * a packet the network cannot take is lost, as on a wire, and go-back-N recovers it (R8).
   * The bytes may be reused by the caller as soon as send returns.
   */
  send(packet: Uint8Array, dstIp: string, dstPort?: number): void;
  /** Deliver arriving packets to `handler`; the bytes are valid only during the call. */
  onPacket(handler: PacketHandler): void;
  /** Release the address (migration moves it to another host). */
  close(): Promise<void>;
}
