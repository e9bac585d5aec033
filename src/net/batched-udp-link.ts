// The net layer's batched path: the same Link as UdpLink, over the native addon's sendmmsg and
// recvmmsg (docs/native.md, "Batched UDP"). Sends made in one turn of the event loop are copied
// into an arena and leave in one system call at the next microtask; arrivals are read up to
// `recvSlots` per call once a worker thread (readiness.ts) says the socket is readable.
//
// The socket sends IPv4 id 0 (udpBind sets IP_PMTUDISC_DO: the id vrdma seals ICRCs under) and
// asks for the same 4 MiB socket buffers as UdpLink. A datagram longer than `maxPacketBytes` is
// dropped and counted (receiveTruncated). Without the addon, open() rejects with
// NATIVE_UNAVAILABLE: UdpLink always works.
import { type NativeAddon, nativeStatus } from '../native/addon.js';
import { type Link, type LinkAddress, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { ipv4, ipv4Text } from '../nic/roce/icrc.js';
import { checkBindPort, checkDestPort, checkIpv4 } from './address.js';
import { type LinkCounters, zeroCounters } from './counters.js';
import { bindError, NetError, NetErrorCode } from './errors.js';
import { DEFAULT_SOCKET_BUFFER_BYTES } from './udp-link.js';
import { ReadinessWatcher } from './readiness.js';

/** Room for a 4 KiB-MTU packet, or a 9000-byte jumbo frame's. */
export const DEFAULT_MAX_PACKET_BYTES = 16 << 10;
export const DEFAULT_RECV_SLOTS = 64;
export const DEFAULT_SEND_ARENA_BYTES = 1 << 20;
/** recvmmsg calls per wake-up before other I/O gets a turn. */
const RECV_ROUNDS = 4;

export interface BatchedUdpLinkOptions {
  readonly ip: string;
  /** Default 4791; 0 binds any free port (tests). */
  readonly port?: number;
  readonly maxPacketBytes?: number;
  readonly recvSlots?: number;
  readonly sendArenaBytes?: number;
  /** SO_RCVBUF/SO_SNDBUF to ask for (default 4 MiB); Linux caps them at net.core.rmem_max/wmem_max. */
  readonly recvBufferBytes?: number;
  readonly sendBufferBytes?: number;
}

export interface BatchedLinkCounters extends LinkCounters {
  /** Datagrams longer than maxPacketBytes: cut by the kernel, so dropped. */
  receiveTruncated: number;
  /** recvmmsg/sendmmsg calls: packets per call is the batching achieved. */
  recvCalls: number;
  sendCalls: number;
}

export class BatchedUdpLink implements Link {
  private handler: PacketHandler | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private watcher: ReadinessWatcher | null = null;
  private readonly stats: BatchedLinkCounters = { ...zeroCounters(), receiveTruncated: 0, recvCalls: 0, sendCalls: 0 };
  private readonly W: number;
  // Send side: packets copied into the arena, described [offset, length, ipv4, port].
  private readonly sendArena: Uint8Array;
  private readonly sendDesc: Uint32Array;
  private sendCount = 0;
  private sendFill = 0;
  private flushQueued = false;
  private lastDst = '';
  private lastDstU32 = 0;
  // Receive side: recvSlots slots of maxPacketBytes.
  private readonly recvBuf: Uint8Array;
  private readonly recvDesc: Uint32Array;
  private lastSrcU32 = -1;
  private lastSrc = '';
  lastSendError: string | null = null;
  lastReceiveError: string | null = null;

  private constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
    readonly localIp: string,
    readonly localPort: number,
    private readonly maxPacketBytes: number,
    private readonly recvSlots: number,
    sendArenaBytes: number,
  ) {
    this.W = native.udp.DESC_WORDS;
    this.sendArena = new Uint8Array(sendArenaBytes);
    this.sendDesc = new Uint32Array(native.udp.MAX_BATCH * this.W);
    this.recvBuf = new Uint8Array(recvSlots * maxPacketBytes);
    this.recvDesc = new Uint32Array(recvSlots * this.W);
  }

  /** Bind with the addon. Rejects with NetError (NATIVE_UNAVAILABLE, ADDRESS_IN_USE, ...). */
  static async open(opts: BatchedUdpLinkOptions): Promise<BatchedUdpLink> {
    const port = opts.port ?? ROCE_UDP_PORT;
    checkIpv4(opts.ip, 'local address');
    checkBindPort(port, opts.ip);
    const maxPacket = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    const arena = opts.sendArenaBytes ?? DEFAULT_SEND_ARENA_BYTES;
    const status = nativeStatus();
    if (!status.available) throw new NetError(NetErrorCode.NativeUnavailable, status.reason);
    const native = status.addon;
    const slots = opts.recvSlots ?? DEFAULT_RECV_SLOTS;
    if (!(Number.isInteger(maxPacket) && maxPacket >= 16 && maxPacket <= 65536)) throw new RangeError(`maxPacketBytes ${maxPacket} is not in 16..65536`);
    if (!(Number.isInteger(slots) && slots >= 1 && slots <= native.udp.MAX_BATCH)) throw new RangeError(`recvSlots ${slots} is not in 1..${native.udp.MAX_BATCH}`);
    if (!(Number.isInteger(arena) && arena >= maxPacket)) throw new RangeError(`sendArenaBytes ${arena} is below maxPacketBytes ${maxPacket}`);
    const recvBuffer = opts.recvBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    const sendBuffer = opts.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    for (const [what, v] of [['recvBufferBytes', recvBuffer], ['sendBufferBytes', sendBuffer]] as const) {
      if (!(Number.isInteger(v) && v > 0 && v <= 0x7fffffff)) throw new RangeError(`${what} ${v} is not in 1..2^31-1`);
    }
    let fd: number;
    try {
      fd = native.udpBind(opts.ip, port);
    } catch (err) {
      throw bindError(err, `${opts.ip}:${port}`);
    }
    try {
      native.socketSetOption(fd, 'SO_RCVBUF', recvBuffer);
      native.socketSetOption(fd, 'SO_SNDBUF', sendBuffer);
    } catch (err) {
      native.closeFd(fd);
      throw err;
    }
    const link = new BatchedUdpLink(native, fd, opts.ip, native.udpLocalAddress(fd).port, maxPacket, slots, arena);
    try {
      link.watcher = await ReadinessWatcher.start(fd, () => link.drain(), (err) => (link.lastReceiveError = err.message));
    } catch (err) {
      native.closeFd(fd);
      throw err;
    }
    return link;
  }

  /** The socket buffer sizes the kernel granted (Linux reports twice what was asked, capped). */
  get bufferBytes(): { recv: number; send: number } {
    if (this.closed) throw new NetError(NetErrorCode.Closed, `${this.localIp}:${this.localPort}`);
    return { recv: this.native.socketGetOption(this.fd, 'SO_RCVBUF'), send: this.native.socketGetOption(this.fd, 'SO_SNDBUF') };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  counters(): BatchedLinkCounters {
    return { ...this.stats };
  }

  send(packet: Uint8Array, dstIp: string, dstPort: number = ROCE_UDP_PORT): void {
    if (dstIp !== this.lastDst) {
      checkIpv4(dstIp, 'destination');
      this.lastDst = dstIp;
      this.lastDstU32 = ipv4(dstIp);
    }
    if (dstPort !== ROCE_UDP_PORT) checkDestPort(dstPort);
    if (this.closed || packet.length > this.sendArena.length) {
      this.stats.sendDropped++;
      return;
    }
    if (this.sendCount === this.native.udp.MAX_BATCH || this.sendFill + packet.length > this.sendArena.length) this.flush();
    const d = this.sendCount * this.W;
    this.sendArena.set(packet, this.sendFill);
    this.sendDesc[d] = this.sendFill;
    this.sendDesc[d + 1] = packet.length;
    this.sendDesc[d + 2] = this.lastDstU32;
    this.sendDesc[d + 3] = dstPort;
    this.sendFill += packet.length;
    this.sendCount++;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushTask);
    }
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Send everything queued. What the kernel will not take now is lost, as on a wire (R8). */
  private flush(): void {
    const n = this.sendCount;
    let i = 0;
    while (i < n) {
      let k: number;
      this.stats.sendCalls++;
      try {
        k = this.native.udpSendMany(this.fd, this.sendArena, this.sendDesc.subarray(i * this.W), n - i);
      } catch (err) {
        // sendmmsg reports an error only for the first datagram of the call: skip that one.
        this.stats.sendErrors++;
        this.lastSendError = (err as { code?: string }).code ?? String(err);
        i++;
        continue;
      }
      if (k === 0) {
        this.stats.sendDropped += n - i;
        break;
      }
      for (let j = i; j < i + k; j++) this.stats.bytesSent += this.sendDesc[j * this.W + 1];
      this.stats.packetsSent += k;
      i += k;
    }
    this.sendCount = 0;
    this.sendFill = 0;
  }

  /** Read what is waiting, a batch per call; re-arm the watcher once the socket is empty. */
  private drain(): void {
    if (this.closed) return;
    const W = this.W;
    for (let round = 0; round < RECV_ROUNDS; round++) {
      for (let i = 0; i < this.recvSlots; i++) {
        this.recvDesc[i * W] = i * this.maxPacketBytes;
        this.recvDesc[i * W + 1] = this.maxPacketBytes;
      }
      let n: number;
      this.stats.recvCalls++;
      try {
        n = this.native.udpRecvMany(this.fd, this.recvBuf, this.recvDesc, this.recvSlots);
      } catch (err) {
        this.lastReceiveError = (err as { code?: string }).code ?? String(err);
        break;
      }
      for (let i = 0; i < n && !this.closed; i++) this.deliver(i);
      if (n < this.recvSlots || this.closed) {
        this.watcher?.rearm();
        return;
      }
    }
    // More may be waiting: let other I/O have a turn first.
    setImmediate(() => this.drain());
  }

  private deliver(i: number): void {
    const W = this.W;
    const off = this.recvDesc[i * W];
    const len = this.recvDesc[i * W + 1];
    const src = this.recvDesc[i * W + 2];
    const portFlags = this.recvDesc[i * W + 3];
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
    this.handler?.(this.recvBuf.subarray(off, off + len), from);
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** Send what is queued, stop watching, close the socket: then the address is free. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.flush();
      this.closed = true;
      this.closing = (async () => {
        await this.watcher?.close();
        this.native.closeFd(this.fd);
      })();
    }
    return this.closing;
  }
}
