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
import { type Link, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { DestinationCheck, checkBindPort, checkIpv4 } from './address.js';
import { type BatchedLinkCounters, zeroBatchedCounters } from './counters.js';
import { bindError, NetError, NetErrorCode } from './errors.js';
import { DEFAULT_MAX_PACKET_BYTES, DEFAULT_RECV_SLOTS, MmsgReceiver } from './mmsg-receiver.js';
import { DEFAULT_SEND_ARENA_BYTES, MmsgSender } from './mmsg-sender.js';
import { DEFAULT_SOCKET_BUFFER_BYTES } from './udp-link.js';
import { ReadinessWatcher } from './readiness.js';
import { ipv4 } from '../nic/roce/icrc.js';

export { DEFAULT_MAX_PACKET_BYTES, DEFAULT_RECV_SLOTS };
/** recvmmsg calls per wake-up before other I/O gets a turn. */
const RECV_ROUNDS = 4;
/** Group sizes qpnSteering accepts (udpBind's steerGroup). */
export const MIN_QPN_STEERING = 2;
export const MAX_QPN_STEERING = 64;

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
  /**
   * Kernel steering by destination QPN (docs/native.md, "QPN steering"): the size N (2..64) of an
   * SO_REUSEPORT group of links on the same ip and port, each typically owned by its own thread.
   * Members are indexed in the order they were opened (bound); once all N are open, a packet whose
   * BTH destination QPN is q arrives at member q mod N (one shorter than 8 bytes, at member 0; while
   * fewer than N are open, a packet for a missing index goes to a member the kernel picks by hash).
   * Every member must be opened with the same N: the last one to bind sets the group's program.
   * A member that closes is replaced in the kernel's array by the last member, so indices shift:
   * close the whole group and open it again rather than patch it. Needs a fixed port (not 0).
   * A plain link on an address a group holds fails with ADDRESS_IN_USE. Absent: no group.
   */
  readonly qpnSteering?: number;
  /**
   * Take over this socket instead of binding one: a socket a link left open when its thread died
   * (a QP shard's, src/nic/shard), still bound to ip:port and still in its steering group at its
   * index. It must be a UDP socket bound to ip:port (else NetError INVALID_ADDRESS and the fd is left
   * alone); from then on the link owns it.
   */
  readonly adoptFd?: number;
  /**
   * Who watches the socket for input: a thread of its own blocked in poll(2) that posts a message
   * per burst ('thread', the default, readiness.ts), or this thread's event loop through the
   * addon's FdWatch ('loop': no thread and no message; what QP shards use).
   */
  readonly readiness?: 'thread' | 'loop';
}


export class BatchedUdpLink implements Link {
  private handler: PacketHandler | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private watcher: ReadinessWatcher | null = null;
  private loopWatch: { stop(): void } | null = null;
  private readonly stats = zeroBatchedCounters();
  private readonly sender: MmsgSender;
  private readonly receiver: MmsgReceiver;
  private readonly dst = new DestinationCheck();
  /** Why the readiness thread stopped watching the socket, if it did. */
  private watcherError: string | null = null;

  private constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
    readonly localIp: string,
    readonly localPort: number,
    maxPacketBytes: number,
    recvSlots: number,
    sendArenaBytes: number,
  ) {
    this.sender = new MmsgSender(native, fd, this.stats, sendArenaBytes);
    this.receiver = new MmsgReceiver(native, fd, this.stats, recvSlots, maxPacketBytes);
  }

  /** Bind with the addon. Rejects with NetError (NATIVE_UNAVAILABLE, ADDRESS_IN_USE, ...). */
  static async open(opts: BatchedUdpLinkOptions): Promise<BatchedUdpLink> {
    const port = opts.port ?? ROCE_UDP_PORT;
    checkIpv4(opts.ip, 'local address');
    checkBindPort(port, opts.ip);
    const steering = opts.qpnSteering;
    if (steering !== undefined) {
      if (!(Number.isInteger(steering) && steering >= MIN_QPN_STEERING && steering <= MAX_QPN_STEERING)) {
        throw new RangeError(`qpnSteering ${steering} is not in ${MIN_QPN_STEERING}..${MAX_QPN_STEERING}`);
      }
      if (port === 0) throw new RangeError('qpnSteering needs a fixed port: with port 0 every member would bind a different one');
    }
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
    if (opts.adoptFd !== undefined) {
      fd = opts.adoptFd;
      let bound: { ipv4: number; port: number } | null = null;
      try {
        bound = Number.isInteger(fd) && fd >= 0 ? native.udpLocalAddress(fd) : null;
      } catch {
        // Not a socket (or not open): refused below.
      }
      if (bound === null || bound.ipv4 >>> 0 !== ipv4(opts.ip) >>> 0 || bound.port !== port) {
        throw new NetError(NetErrorCode.InvalidAddress, `fd ${fd} is not a socket bound to ${opts.ip}:${port}`);
      }
    } else {
      try {
        fd = native.udpBind(opts.ip, port, steering);
      } catch (err) {
        throw bindError(err, `${opts.ip}:${port}`);
      }
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
      if (opts.readiness === 'loop') {
        // Level-triggered: what one call leaves unread calls again from the next turn.
        link.loopWatch = new native.FdWatch(fd, () => void link.receiver.drain(link.handler, RECV_ROUNDS, link.isOpen));
      } else {
        link.watcher = await ReadinessWatcher.start(fd, () => link.drain(), (err) => (link.watcherError = err.message));
      }
    } catch (err) {
      native.closeFd(fd);
      throw err;
    }
    return link;
  }

  /** The socket's file descriptor (what a successor adopts: adoptFd). */
  get socketFd(): number {
    return this.fd;
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
    this.dst.check(dstIp, dstPort);
    if (this.closed) {
      this.stats.sendDropped++;
      return;
    }
    this.sender.send(packet, this.dst.u32, dstPort);
  }

  /** The code of the last send the kernel refused ("ENOBUFS"), for diagnostics. */
  get lastSendError(): string | null {
    return this.sender.lastError;
  }

  /** Read what is waiting, a batch per call; re-arm the watcher once the socket is empty. */
  private drain(): void {
    if (this.closed) return;
    if (this.receiver.drain(this.handler, RECV_ROUNDS, this.isOpen)) {
      this.watcher?.rearm();
      return;
    }
    // More may be waiting: let other I/O have a turn first.
    setImmediate(() => this.drain());
  }

  private readonly isOpen = (): boolean => !this.closed;

  /** The last error recvmmsg reported, for diagnostics. */
  get lastReceiveError(): string | null {
    return this.watcherError ?? this.receiver.lastError;
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** Send what is queued, stop watching, close the socket: then the address is free. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.sender.flush();
      this.closed = true;
      this.closing = (async () => {
        this.loopWatch?.stop();
        await this.watcher?.close();
        this.native.closeFd(this.fd);
      })();
    }
    return this.closing;
  }
}
