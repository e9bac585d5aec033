// SoftRoce's side of the Link: packets leave built in a buffer in the device arena (so the Wasm
// ICRC kernel reads them in place) and sealed with the ICRC of the IP/UDP context they travel in:
// the two links' IPv4 addresses, UDP ports (source: the link's, destination 4791), IP id 0 with
// DF, which is what vrdma's sockets send (IP_PMTUDISC_DO, src/net/ip-id-zero.ts). Arriving
// packets are checked against the same context except the id, which a UDP socket never shows:
// Linux rxe counts ids, a plain socket hashes them, so the check accepts a packet when some id
// makes its ICRC right (IcrcCheck ipId 'any'; icrc.ts works out what that costs).
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { KernelEngine } from '../../virtio/queue.js';
import type { KernelExports } from '../../wasm/loader.js';
import type { Link, LinkAddress } from '../link.js';
import { RoceError, RoceErrorCode } from '../roce/errors.js';
import { AddressCache, IP_FLAG_DF, type IcrcContext, type IcrcEngine, ROCE_UDP_PORT, TsIcrc, WasmIcrc, ipv4 } from '../roce/icrc.js';
import { type OpcodeInfo, opcodeInfo } from '../roce/opcodes.js';
import { type BuildFields, type RocePacket, buildHeaders, packetBytes, parsePacket, sealPacket } from '../roce/packet.js';
import type { PacketPort } from '../roce/transport-qp.js';

/** The largest packet: a 4096-byte payload behind the longest headers, with pad and ICRC. */
export const TX_BUFFER_BYTES = 4096 + 128;

/** An IcrcContext this wire fills in per packet (a packet keeps no reference to it). */
type MutableContext = { -readonly [K in keyof IcrcContext]: IcrcContext[K] };

export class SoftWire implements PacketPort {
  readonly icrc: IcrcEngine;
  readonly localIpU32: number;
  private readonly txOff: number;
  private readonly tx: Uint8Array;
  readonly counters = { sent: 0, received: 0 };
  // Per packet only the peer's address and port change: its text is converted when it does, and
  // the contexts are filled in place rather than allocated (two objects per packet otherwise).
  private readonly to = new AddressCache();
  private readonly from = new AddressCache();
  private readonly txCtx: MutableContext;
  private readonly rxCtx: MutableContext;
  private readonly seal: { ctx: IcrcContext; engine: IcrcEngine };
  private readonly check: { ctx: IcrcContext; engine: IcrcEngine; ipId: 'any' };

  constructor(private readonly dm: DeviceMemory, private readonly link: Link, engine: KernelEngine, kernels?: KernelExports) {
    this.icrc = engine === 'wasm' ? new WasmIcrc(dm, kernels) : new TsIcrc();
    this.localIpU32 = ipv4(link.localIp);
    this.txOff = dm.arena.alloc(TX_BUFFER_BYTES, 64);
    this.tx = new Uint8Array(dm.memory.buffer, this.txOff, TX_BUFFER_BYTES);
    this.txCtx = { srcIp: this.localIpU32, dstIp: 0, ipId: 0, ipFlags: IP_FLAG_DF, srcPort: 0, dstPort: ROCE_UDP_PORT };
    this.rxCtx = { srcIp: 0, dstIp: this.localIpU32, ipId: 0, ipFlags: IP_FLAG_DF, srcPort: 0, dstPort: ROCE_UDP_PORT };
    this.seal = { ctx: this.txCtx, engine: this.icrc };
    this.check = { ctx: this.rxCtx, engine: this.icrc, ipId: 'any' };
  }

  transmit(dstIp: string, fields: BuildFields, payloadBytes: number, fill: ((buf: Uint8Array, off: number) => boolean) | null): boolean {
    const hdrBytes = buildHeaders(fields, payloadBytes, this.tx, 0);
    if (fill !== null && !fill(this.tx, hdrBytes)) return false;
    const lenBytes = packetBytes(opcodeInfo(fields.opcode) as OpcodeInfo, payloadBytes);
    this.txCtx.dstIp = this.to.toU32(dstIp);
    // The link's port may change as the VM's address is bound again (a migration).
    this.txCtx.srcPort = this.link.localPort;
    sealPacket(this.tx, 0, lenBytes, this.seal);
    this.counters.sent++;
    this.link.send(this.tx.subarray(0, lenBytes), dstIp, ROCE_UDP_PORT);
    return true;
  }

  /** Parse and ICRC-check a packet that arrived from `from`. */
  parse(bytes: Uint8Array, from: LinkAddress): RocePacket | RoceError {
    this.counters.received++;
    try {
      this.rxCtx.srcIp = this.from.toU32(from.ip);
    } catch {
      return new RoceError(RoceErrorCode.BadFrame, `source ${from.ip} is not an IPv4 address`);
    }
    this.rxCtx.srcPort = from.port & 0xffff;
    return parsePacket(bytes, 0, bytes.length, this.check);
  }

  dispose(): void {
    if (this.icrc instanceof WasmIcrc) this.icrc.release();
    this.dm.arena.release(this.txOff);
  }
}
