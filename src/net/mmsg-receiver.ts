// The receive half of a batched UDP socket: recvmmsg(2) (native addon) into one reused buffer of
// slots, each datagram handed on as a view that is valid only during the handler's call (the
// Link contract). BatchedUdpLink reads through it when its readiness thread says the socket is
// readable. UdpLink reads through it after node:dgram delivered a datagram: an arrival is the
// interrupt, and what queued behind it is then read a batch per system call until the socket is
// empty or `maxRounds` calls were made (the way Linux NAPI polls a NIC after its interrupt).
import type { NativeAddon } from '../native/addon.js';
import type { LinkAddress, PacketHandler } from '../nic/link.js';
import { ipv4Text } from '../nic/roce/icrc.js';
import type { LinkCounters } from './counters.js';

/** Room for a 4 KiB-MTU packet, or a 9000-byte jumbo frame's. */
export const DEFAULT_MAX_PACKET_BYTES = 16 << 10;
export const DEFAULT_RECV_SLOTS = 64;

export interface MmsgReceiverCounters extends Pick<LinkCounters, 'packetsReceived' | 'bytesReceived'> {
  /** Datagrams longer than a slot: cut by the kernel, so dropped. */
  receiveTruncated: number;
  /** recvmmsg calls: packets per call is the batching achieved. */
  recvCalls: number;
}

export class MmsgReceiver {
  private readonly W: number;
  private readonly buf: Uint8Array;
  private readonly desc: Uint32Array;
  private lastSrcU32 = -1;
  private lastSrc = '';
  /** The last error recvmmsg reported, for diagnostics. */
  lastError: string | null = null;

  constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
    private readonly stats: MmsgReceiverCounters,
    /** 1..udp.MAX_BATCH, and 16..65536 bytes: the caller checks them before it binds. */
    readonly slots = DEFAULT_RECV_SLOTS,
    readonly maxPacketBytes = DEFAULT_MAX_PACKET_BYTES,
  ) {
    this.W = native.udp.DESC_WORDS;
    this.buf = new Uint8Array(slots * maxPacketBytes);
    this.desc = new Uint32Array(slots * this.W);
    for (let i = 0; i < slots; i++) {
      this.desc[i * this.W] = i * maxPacketBytes;
      this.desc[i * this.W + 1] = maxPacketBytes;
    }
  }

  /**
   * Read up to `maxRounds` batches, handing each datagram to `handler` while `open()` holds.
   * Returns true when the socket was left empty (a batch came back short), false when more may
   * be waiting.
   */
  drain(handler: PacketHandler | null, maxRounds: number, open: () => boolean): boolean {
    const W = this.W;
    for (let round = 0; round < maxRounds; round++) {
      let n: number;
      this.stats.recvCalls++;
      try {
        n = this.native.udpRecvMany(this.fd, this.buf, this.desc, this.slots);
      } catch (err) {
        this.lastError = (err as { code?: string }).code ?? String(err);
        return true;
      }
      try {
        for (let i = 0; i < n && open(); i++) this.deliver(i, handler);
      } finally {
        // recvmmsg wrote each used slot's length over its capacity; the offsets stand.
        for (let i = 0; i < n; i++) this.desc[i * W + 1] = this.maxPacketBytes;
      }
      if (n < this.slots || !open()) return true;
    }
    return false;
  }

  private deliver(i: number, handler: PacketHandler | null): void {
    const W = this.W;
    const off = this.desc[i * W];
    const len = this.desc[i * W + 1];
    const src = this.desc[i * W + 2];
    const portFlags = this.desc[i * W + 3];
    if ((portFlags & this.native.udp.TRUNCATED) !== 0) {
      this.stats.receiveTruncated++;
      return;
    }
    if (src !== this.lastSrcU32) {
      this.lastSrcU32 = src;
      this.lastSrc = ipv4Text(src);
    }
    this.stats.packetsReceived++;
    this.stats.bytesReceived += len;
    const from: LinkAddress = { ip: this.lastSrc, port: portFlags & 0xffff };
    handler?.(this.buf.subarray(off, off + len), from);
  }
}
