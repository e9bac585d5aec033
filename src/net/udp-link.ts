// The net layer on real sockets (DESIGN.md "Layers", net): one UDP socket bound to the VM's own
// IPv4 address (its GID) and port 4791. On one machine hosts and VMs are loopback addresses
// (127.0.0.0/8 all route to lo), so two links on 127.0.0.2 and 127.0.1.5 talk through the kernel
// exactly as two hosts would. With the native addon the socket sends IPv4 id 0, the id vrdma
// seals ICRCs under (ip-id-zero.ts); without it Linux picks a changing id, which vrdma peers
// accept (they solve for the id) but Linux rxe does not: `ipIdZero` says which. Migration moves the address (R7): the source closes its link, which
// frees the address at once, and the destination opens one on the same address.
import dgram from 'node:dgram';
import { type Link, type LinkAddress, type PacketHandler, ROCE_UDP_PORT } from '../nic/link.js';
import { DestinationCheck, checkBindPort, checkIpv4 } from './address.js';
import { type BatchedLinkCounters, zeroBatchedCounters } from './counters.js';
import { bindError, NetError, NetErrorCode } from './errors.js';
import { nativeStatus } from '../native/addon.js';
import { type IpIdZero, dgramSocketFd, pinDgramIpIdZero } from './ip-id-zero.js';
import { MmsgReceiver } from './mmsg-receiver.js';
import { MmsgSender } from './mmsg-sender.js';
import { udpSocketDrops } from './kernel-drops.js';

/** 4 MiB: a few thousand 4 KiB packets, so a burst does not overflow while the loop is busy. */
export const DEFAULT_SOCKET_BUFFER_BYTES = 4 << 20;
/** Sends handed to the socket and not yet completed, past which send drops (bounded memory). */
export const DEFAULT_MAX_QUEUED_SENDS = 8192;
/**
 * Sends from half of Buffer.poolSize (4 KiB) up to this size are copied into pooled buffers,
 * reused once the kernel has the datagram: a fresh buffer per full-size packet is an external
 * allocation of its own, and tens of thousands of them a second made V8 run a full mark-compact
 * (2 to 16 ms on the event loop) every 100 ms or so. Smaller sends already share Node's slabs.
 */
export const POOLED_SEND_BYTES = 4352;
/** Pooled send buffers kept for reuse (more may be in flight; the extra ones are let go). */
const SEND_POOL_KEEP = 512;

export interface UdpLinkOptions {
  /** The VM's IPv4 address (its GID). */
  readonly ip: string;
  /** Copy sends into pooled buffers (default); false allocates one per packet (the baseline). */
  readonly pooledSends?: boolean;
  /** Default 4791; 0 binds any free port (tests). */
  readonly port?: number;
  /** SO_RCVBUF/SO_SNDBUF to ask for; Linux caps them at net.core.rmem_max/wmem_max. */
  readonly recvBufferBytes?: number;
  readonly sendBufferBytes?: number;
  /**
   * Dgram path: sends handed to the socket and not yet completed, past which sends are dropped.
   * The batched path's queue is its send arena, handed to the kernel whole when full.
   */
  readonly maxQueuedSends?: number;
  /**
   * Batch system calls through the native addon when it is present (default): sends leave in one
   * sendmmsg(2) per turn of the event loop (mmsg-sender.ts), and after node:dgram delivers a
   * datagram, what queued behind it is read by recvmmsg(2) (mmsg-receiver.ts). False: one dgram
   * call per datagram each way.
   */
  readonly batched?: boolean;
}

/** Whether a UdpLink batches its socket calls through the addon, or why not. */
export type UdpBatching = { readonly batched: true } | { readonly batched: false; readonly reason: string };

/** recvmmsg calls after one dgram arrival before the event loop gets a turn. */
const RX_ROUNDS = 4;

export class UdpLink implements Link {
  private handler: PacketHandler | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private inFlight = 0;
  private readonly dst = new DestinationCheck();
  private settleWaiters: (() => void)[] = [];
  private readonly sendPool: Buffer[] = [];
  private readonly stats = zeroBatchedCounters();
  /** The batched paths, when the addon and the socket's fd are there and they were not declined. */
  private readonly tx: MmsgSender | null;
  private readonly rx: MmsgReceiver | null;
  /** Whether sends and receives are batched through the addon, or why not. */
  readonly batching: UdpBatching;
  private readonly isOpen = (): boolean => !this.closed;
  private readonly maxQueuedSends: number;
  /** The code of the last send the kernel refused ("ENOBUFS"), for diagnostics. */
  private lastDgramError: string | null = null;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly localIp: string,
    readonly localPort: number,
    maxQueuedSends: number,
    /** Whether packets leave with IPv4 id 0 (IP_PMTUDISC_DO set through the addon), or why not. */
    readonly ipId: IpIdZero,
    private readonly pooledSends: boolean,
    batched: boolean,
  ) {
    this.maxQueuedSends = maxQueuedSends;
    const batch = batchedPaths(batched, socket, this.stats);
    this.tx = batch.tx;
    this.rx = batch.rx;
    this.batching = batch.batching;
    socket.on('message', (msg, rinfo) => {
      // A plain Uint8Array view, not the Buffer: Buffer.slice() would share memory, not copy it.
      this.deliver(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { ip: rinfo.address, port: rinfo.port });
      // That arrival was the interrupt: read what queued behind it in batches (mmsg-receiver.ts).
      this.rx?.drain(this.handler, RX_ROUNDS, this.isOpen);
    });
    // After bind, socket errors are network events: count them, never crash the process.
    socket.on('error', (err) => {
      this.stats.sendErrors++;
      this.lastDgramError = (err as { code?: string }).code ?? err.message;
    });
  }

  /** Bind a socket to ip:port. Rejects with NetError (ADDRESS_IN_USE, ADDRESS_NOT_AVAILABLE, ...). */
  static async open(opts: UdpLinkOptions): Promise<UdpLink> {
    const port = opts.port ?? ROCE_UDP_PORT;
    checkIpv4(opts.ip, 'local address');
    checkBindPort(port, opts.ip);
    const recvBufferSize = opts.recvBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    const sendBufferSize = opts.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
    const maxQueued = opts.maxQueuedSends ?? DEFAULT_MAX_QUEUED_SENDS;
    if (!(Number.isInteger(maxQueued) && maxQueued > 0)) throw new RangeError(`maxQueuedSends ${maxQueued} must be a positive integer`);
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize, sendBufferSize });
    const where = `${opts.ip}:${port}`;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        socket.off('listening', onListening);
        socket.close();
        reject(bindError(err, where));
      };
      const onListening = () => {
        socket.off('error', onError);
        resolve();
      };
      socket.once('error', onError);
      socket.once('listening', onListening);
      socket.bind({ address: opts.ip, port, exclusive: true });
    });
    return new UdpLink(socket, opts.ip, socket.address().port, maxQueued, pinDgramIpIdZero(socket), opts.pooledSends ?? true, opts.batched ?? true);
  }

  /** The socket buffer sizes the kernel granted (Linux reports twice what was asked, capped). */
  get bufferBytes(): { recv: number; send: number } {
    if (this.closed) throw new NetError(NetErrorCode.Closed, `${this.localIp}:${this.localPort}`);
    return { recv: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** What was sent and received; on the batched path, the sendmmsg and recvmmsg calls too. */
  counters(): BatchedLinkCounters {
    return { ...this.stats };
  }

  /** The code of the last send the kernel refused ("ENOBUFS"), for diagnostics. */
  get lastSendError(): string | null {
    return this.tx?.lastError ?? this.lastDgramError;
  }

  /**
   * Datagrams for this socket the kernel dropped because the receive buffer was full (loss that
   * no counter of ours sees), or null where the kernel does not tell (kernel-drops.ts).
   */
  kernelDrops(): number | null {
    return this.closed ? null : udpSocketDrops(this.localIp, this.localPort);
  }

  send(packet: Uint8Array, dstIp: string, dstPort: number = ROCE_UDP_PORT): void {
    this.dst.check(dstIp, dstPort);
    if (this.tx !== null) {
      if (this.closed) this.stats.sendDropped++;
      else this.tx.send(packet, this.dst.u32, dstPort);
      return;
    }
    if (this.closed || this.inFlight >= this.maxQueuedSends) {
      this.stats.sendDropped++;
      return;
    }
    this.inFlight++;
    // dgram may send later (when the socket was not writable) and the caller may reuse its bytes,
    // so they are copied: a full-size packet into a pooled buffer that comes back when the send
    // completes, a smaller one by Buffer.from, which carves it out of Node's shared slabs.
    if (packet.length < Buffer.poolSize >>> 1 || packet.length > POOLED_SEND_BYTES || !this.pooledSends) {
      this.socket.send(Buffer.from(packet), dstPort, dstIp, this.onSent);
      return;
    }
    const buf = this.sendPool.pop() ?? Buffer.allocUnsafeSlow(POOLED_SEND_BYTES);
    buf.set(packet);
    this.socket.send(buf.subarray(0, packet.length), dstPort, dstIp, (err, bytes) => {
      if (this.sendPool.length < SEND_POOL_KEEP) this.sendPool.push(buf);
      this.onSent(err, bytes);
    });
  }

  /** Resolves once every send handed to the socket so far has completed or failed. */
  settled(): Promise<void> {
    this.tx?.flush();
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  private readonly onSent = (err: Error | null, bytes: number): void => {
    if (--this.inFlight === 0 && this.settleWaiters.length > 0) {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      waiters.forEach((w) => w());
    }
    if (err) {
      this.stats.sendErrors++;
      this.lastDgramError = (err as { code?: string }).code ?? err.message;
      return;
    }
    this.stats.packetsSent++;
    this.stats.bytesSent += bytes;
  };

  private deliver(packet: Uint8Array, from: LinkAddress): void {
    this.stats.packetsReceived++;
    this.stats.bytesReceived += packet.length;
    this.handler?.(packet, from);
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /** Close the socket; when this resolves the address is free for another process to bind. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.tx?.flush();
      this.closed = true;
      this.closing = new Promise<void>((resolve) => this.socket.close(() => resolve()));
    }
    return this.closing;
  }
}

/** The batched send and receive paths on a bound dgram socket's fd, or why there are none. */
function batchedPaths(wanted: boolean, socket: dgram.Socket, stats: BatchedLinkCounters): { tx: MmsgSender | null; rx: MmsgReceiver | null; batching: UdpBatching } {
  const none = (reason: string) => ({ tx: null, rx: null, batching: { batched: false, reason } as const });
  if (!wanted) return none('batched socket calls declined');
  const status = nativeStatus();
  if (!status.available) return none(status.reason);
  const fd = dgramSocketFd(socket);
  if (typeof fd === 'string') return none(fd);
  return { tx: new MmsgSender(status.addon, fd, stats), rx: new MmsgReceiver(status.addon, fd, stats), batching: { batched: true } };
}
