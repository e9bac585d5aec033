// A Link wrapper that counts what each local QP puts on and takes off the wire, for metrics and
// the demo's summary: packets and bytes both ways, requests sent again (a PSN not ahead of the
// highest one already sent: go-back-N or a timeout retry, R8), and RNR NAKs sent and received
// (R6's suspended responders answer with them). It reads only the BTH and, for ACKs, the AETH;
// a packet too short to have them is counted under QPN 0. A sent packet names the peer's QPN, so
// the owner tells the link which local QP each connection belongs to (`bindQp`).
import type { Link, PacketHandler } from '../nic/link.js';
import { AethType, aethSyndromeAt, aethTypeOf, bthDqpnAt, bthOpcodeAt, bthPsnAt } from '../nic/roce/headers.js';
import { BTH_BYTES, OpFlag, Opcode, opcodeInfo } from '../nic/roce/opcodes.js';
import { psnDiff } from '../nic/roce/psn.js';

export interface QpTraffic {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  /** Request packets sent again. */
  retransmitted: number;
  rnrNaksSent: number;
  rnrNaksReceived: number;
}

const zero = (): QpTraffic => ({ packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, retransmitted: 0, rnrNaksSent: 0, rnrNaksReceived: 0 });

export class ObservedLink implements Link {
  private readonly perQp = new Map<number, QpTraffic>();
  /** `${peerIp}/${peerQpn}` -> local QPN. */
  private readonly connections = new Map<string, number>();
  /** Highest request PSN sent per local QPN. */
  private readonly highestPsn = new Map<number, number>();

  constructor(private readonly inner: Link) {}

  get localIp(): string {
    return this.inner.localIp;
  }

  get localPort(): number {
    return this.inner.localPort;
  }

  /** Packets to `peerIp`'s QP `peerQpn` are sent by local QP `localQpn` (an RC connection). */
  bindQp(localQpn: number, peerIp: string, peerQpn: number): void {
    this.connections.set(`${peerIp}/${peerQpn}`, localQpn);
    this.traffic(localQpn);
  }

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    this.countSent(packet, dstIp);
    this.inner.send(packet, dstIp, dstPort);
  }

  onPacket(handler: PacketHandler): void {
    this.inner.onPacket((packet, from) => {
      this.countReceived(packet);
      handler(packet, from);
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Carry on from counters another link kept (the same VM before it migrated here): each QP's
   * counts are added to this link's, so totals continue across hosts.
   */
  seed(counts: ReadonlyMap<number, QpTraffic>, highestPsns: ReadonlyMap<number, number> = new Map()): void {
    for (const [qpn, psn] of highestPsns) this.highestPsn.set(qpn, psn);
    for (const [qpn, c] of counts) {
      const t = this.traffic(qpn);
      for (const k of Object.keys(t) as (keyof QpTraffic)[]) t[k] += c[k];
    }
  }

  /** The highest request PSN each local QP sent (what tells a resend from a new request). */
  highestPsns(): Map<number, number> {
    return new Map(this.highestPsn);
  }

  /** A copy of the counters, by local QPN. */
  snapshot(): Map<number, QpTraffic> {
    return new Map([...this.perQp].map(([qpn, t]) => [qpn, { ...t }]));
  }

  private traffic(qpn: number): QpTraffic {
    let t = this.perQp.get(qpn);
    if (t === undefined) this.perQp.set(qpn, (t = zero()));
    return t;
  }

  private countSent(packet: Uint8Array, dstIp: string): void {
    const whole = packet.length >= BTH_BYTES;
    const local = whole ? (this.connections.get(`${dstIp}/${bthDqpnAt(packet, 0)}`) ?? 0) : 0;
    const t = this.traffic(local);
    t.packetsSent++;
    t.bytesSent += packet.length;
    if (!whole) return;
    const opcode = bthOpcodeAt(packet, 0);
    const info = opcodeInfo(opcode);
    if (info === undefined) return;
    if ((info.flags & OpFlag.Request) !== 0 && info.transport === 'RC') {
      const psn = bthPsnAt(packet, 0);
      const highest = this.highestPsn.get(local);
      if (highest !== undefined && psnDiff(psn, highest) <= 0) t.retransmitted++;
      else this.highestPsn.set(local, psn);
    } else if (isRnrNak(packet, opcode)) {
      t.rnrNaksSent++;
    }
  }

  private countReceived(packet: Uint8Array): void {
    const whole = packet.length >= BTH_BYTES;
    const t = this.traffic(whole ? bthDqpnAt(packet, 0) : 0);
    t.packetsReceived++;
    t.bytesReceived += packet.length;
    if (whole && isRnrNak(packet, bthOpcodeAt(packet, 0))) t.rnrNaksReceived++;
  }
}

function isRnrNak(packet: Uint8Array, opcode: number): boolean {
  return opcode === Opcode.RcAck && packet.length > BTH_BYTES && aethTypeOf(aethSyndromeAt(packet, BTH_BYTES)) === AethType.RnrNak;
}
