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
import { IP_FLAG_DF, type IcrcContext, type IcrcEngine, ROCE_UDP_PORT, TsIcrc, WasmIcrc, ipv4 } from '../roce/icrc.js';
import { type OpcodeInfo, opcodeInfo } from '../roce/opcodes.js';
import { type BuildFields, type RocePacket, buildHeaders, packetBytes, parsePacket, sealPacket } from '../roce/packet.js';
import type { PacketPort } from '../roce/transport-qp.js';

/** The largest packet: a 4096-byte payload behind the longest headers, with pad and ICRC. */
export const TX_BUFFER_BYTES = 4096 + 128;

export class SoftWire implements PacketPort {
  readonly icrc: IcrcEngine;
  readonly localIpU32: number;
  private readonly txOff: number;
  private readonly tx: Uint8Array;
  readonly counters = { sent: 0, received: 0 };

  constructor(private readonly dm: DeviceMemory, private readonly link: Link, engine: KernelEngine, kernels?: KernelExports) {
    this.icrc = engine === 'wasm' ? new WasmIcrc(dm, kernels) : new TsIcrc();
    this.localIpU32 = ipv4(link.localIp);
    this.txOff = dm.arena.alloc(TX_BUFFER_BYTES, 64);
    this.tx = new Uint8Array(dm.memory.buffer, this.txOff, TX_BUFFER_BYTES);
  }

  transmit(dstIp: string, fields: BuildFields, payloadBytes: number, fill: ((buf: Uint8Array, off: number) => boolean) | null): boolean {
    const hdrBytes = buildHeaders(fields, payloadBytes, this.tx, 0);
    if (fill !== null && !fill(this.tx, hdrBytes)) return false;
    const lenBytes = packetBytes(opcodeInfo(fields.opcode) as OpcodeInfo, payloadBytes);
    const ctx: IcrcContext = { srcIp: this.localIpU32, dstIp: ipv4(dstIp), ipId: 0, ipFlags: IP_FLAG_DF, srcPort: this.link.localPort, dstPort: ROCE_UDP_PORT };
    sealPacket(this.tx, 0, lenBytes, { ctx, engine: this.icrc });
    this.counters.sent++;
    this.link.send(this.tx.subarray(0, lenBytes), dstIp, ROCE_UDP_PORT);
    return true;
  }

  /** Parse and ICRC-check a packet that arrived from `from`. */
  parse(bytes: Uint8Array, from: LinkAddress): RocePacket | RoceError {
    this.counters.received++;
    let srcIp: number;
    try {
      srcIp = ipv4(from.ip);
    } catch {
      return new RoceError(RoceErrorCode.BadFrame, `source ${from.ip} is not an IPv4 address`);
    }
    const ctx: IcrcContext = { srcIp, dstIp: this.localIpU32, ipId: 0, ipFlags: IP_FLAG_DF, srcPort: from.port & 0xffff, dstPort: ROCE_UDP_PORT };
    return parsePacket(bytes, 0, bytes.length, { ctx, engine: this.icrc, ipId: 'any' });
  }

  dispose(): void {
    if (this.icrc instanceof WasmIcrc) this.icrc.release();
    this.dm.arena.release(this.txOff);
  }
}
