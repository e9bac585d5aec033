// A Link wrapper that records every packet sent and received to a pcap file. The socket never
// shows vrdma the IP and UDP headers, so each record gets synthetic ones: DF, TTL 64, TOS 0, UDP
// checksum 0, and the IPv4 id the packet's ICRC was sealed under: 0 for what vrdma sends (the
// IcrcContext it seals under, frame.ts socketContext, and what its sockets send with
// IP_PMTUDISC_DO: src/net/ip-id-zero.ts), and for what arrives the id solveIcrcIpId finds (a Linux
// rxe peer counts ids), or 0 when none fits. So the ICRC in the file checks out wherever it did
// on the wire, and Wireshark's InfiniBand dissector decodes the frames (UDP port 4791).
// MAC addresses are made up from the IPv4 address (02:00:a:b:c:d, locally administered).
import { type Link, type LinkAddress, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { buildFrame } from '../nic/roce/frame.js';
import { IP_FLAG_DF, MIN_ICRC_PACKET_BYTES, TsIcrc, ipv4, solveIcrcIpId } from '../nic/roce/icrc.js';
import { PcapWriter, type PcapWriterOptions, type PcapWriterStats } from './pcap-writer.js';

/** The synthetic MAC of an IPv4 address (u32). */
export function macOf(ip: number): Uint8Array {
  return Uint8Array.of(0x02, 0x00, ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff);
}

export class CaptureLink implements Link {
  private readonly localIpU32: number;
  private readonly localMac: Uint8Array;
  private readonly icrc = new TsIcrc();
  /** Packets that could not be framed (too long for IPv4); the link still carried them. */
  unframed = 0;

  private constructor(private readonly inner: Link, private readonly writer: PcapWriter) {
    this.localIpU32 = ipv4(inner.localIp);
    this.localMac = macOf(this.localIpU32);
  }

  /** Wrap `inner`, capturing to a new file at `path` (NetError CAPTURE_IO if it cannot be made). */
  static async open(inner: Link, path: string, opts: PcapWriterOptions = {}): Promise<CaptureLink> {
    return CaptureLink.over(inner, await PcapWriter.create(path, opts));
  }

  /** Wrap `inner`, capturing to a file already made (where a link is wrapped synchronously); closing the link closes it. */
  static over(inner: Link, writer: PcapWriter): CaptureLink {
    return new CaptureLink(inner, writer);
  }

  get localIp(): string {
    return this.inner.localIp;
  }
  get localPort(): number {
    return this.inner.localPort;
  }

  counters(): PcapWriterStats & { unframed: number } {
    return { ...this.writer.counters(), unframed: this.unframed };
  }

  send(packet: Uint8Array, dstIp: string, dstPort: number = ROCE_UDP_PORT): void {
    // The inner link validates the address first: a bad one throws before anything is recorded.
    this.inner.send(packet, dstIp, dstPort);
    const dst = ipv4(dstIp);
    this.record(packet, this.localIpU32, this.localMac, this.inner.localPort, dst, macOf(dst), dstPort);
  }

  onPacket(handler: PacketHandler): void {
    this.inner.onPacket((packet: Uint8Array, from: LinkAddress) => {
      const src = ipv4(from.ip);
      this.record(packet, src, macOf(src), from.port, this.localIpU32, this.localMac, this.inner.localPort, true);
      handler(packet, from);
    });
  }

  private record(packet: Uint8Array, srcIp: number, srcMac: Uint8Array, srcPort: number, dstIp: number, dstMac: Uint8Array, dstPort: number, arrived = false): void {
    if (packet.length > 0xffff - 28) {
      this.unframed++;
      return;
    }
    let ctx = { srcIp, dstIp, ipId: 0, ipFlags: IP_FLAG_DF, srcPort, dstPort };
    if (arrived && packet.length >= MIN_ICRC_PACKET_BYTES) {
      const id = solveIcrcIpId(this.icrc, ctx, packet, 0, packet.length);
      if (id > 0) ctx = { ...ctx, ipId: id };
    }
    this.writer.write(buildFrame({ ctx, srcMac, dstMac, ttl: 64, tos: 0 }, packet));
  }

  /** Writes buffered records out (rejects with NetError CAPTURE_IO if the disk failed). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Close the inner link, then write everything buffered and close the file. */
  async close(): Promise<void> {
    try {
      await this.inner.close();
    } finally {
      await this.writer.close();
    }
  }
}
