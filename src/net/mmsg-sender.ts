// The send half of a batched UDP socket: packets sent in one turn of the event loop are copied
// into an arena and leave in one sendmmsg(2) call (native addon) at the next microtask, or sooner
// when the batch or the arena is full. BatchedUdpLink sends through it, and UdpLink does when the
// addon is present (its socket stays node:dgram's, which keeps receiving through libuv).
//
// What the kernel will not take at flush time is lost, as on a wire (R8): a full socket buffer
// makes sendmmsg move 0 datagrams, and those packets are counted as dropped.
import type { NativeAddon } from '../native/addon.js';
import type { LinkCounters } from './counters.js';

/** 1 MiB: 240 full-size (4 KiB MTU) packets, more than a turn of the RoCE engine sends. */
export const DEFAULT_SEND_ARENA_BYTES = 1 << 20;

export interface MmsgSenderCounters extends Pick<LinkCounters, 'packetsSent' | 'bytesSent' | 'sendErrors' | 'sendDropped'> {
  /** sendmmsg calls: packets per call is the batching achieved. */
  sendCalls: number;
}

export class MmsgSender {
  private readonly W: number;
  private readonly maxBatch: number;
  private readonly arena: Uint8Array;
  private readonly desc: Uint32Array;
  private count = 0;
  private fill = 0;
  private flushQueued = false;
  /** The code of the last send the kernel refused ("ENOBUFS"), for diagnostics. */
  lastError: string | null = null;

  constructor(
    private readonly native: NativeAddon,
    private readonly fd: number,
    /** Counted into by every flush; the owner's counters object. */
    private readonly stats: MmsgSenderCounters,
    arenaBytes = DEFAULT_SEND_ARENA_BYTES,
  ) {
    if (!(Number.isInteger(arenaBytes) && arenaBytes >= 16)) throw new RangeError(`sendArenaBytes ${arenaBytes} is not an integer of at least 16`);
    this.W = native.udp.DESC_WORDS;
    this.maxBatch = native.udp.MAX_BATCH;
    this.arena = new Uint8Array(arenaBytes);
    this.desc = new Uint32Array(this.maxBatch * this.W);
  }

  /** Queue `packet` for `dstIp` (host-order IPv4) and `dstPort`; the caller may reuse its bytes at once. */
  send(packet: Uint8Array, dstIp: number, dstPort: number): void {
    if (packet.length > this.arena.length) {
      this.stats.sendDropped++;
      return;
    }
    if (this.count === this.maxBatch || this.fill + packet.length > this.arena.length) this.flush();
    const d = this.count * this.W;
    this.arena.set(packet, this.fill);
    this.desc[d] = this.fill;
    this.desc[d + 1] = packet.length;
    this.desc[d + 2] = dstIp;
    this.desc[d + 3] = dstPort;
    this.fill += packet.length;
    this.count++;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushTask);
    }
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Hand everything queued to the kernel now. */
  flush(): void {
    const n = this.count;
    let i = 0;
    while (i < n) {
      let k: number;
      this.stats.sendCalls++;
      try {
        k = this.native.udpSendMany(this.fd, this.arena, this.desc.subarray(i * this.W), n - i);
      } catch (err) {
        // sendmmsg reports an error only for the first datagram of the call: skip that one.
        this.stats.sendErrors++;
        this.lastError = (err as { code?: string }).code ?? String(err);
        i++;
        continue;
      }
      if (k === 0) {
        this.stats.sendDropped += n - i;
        break;
      }
      for (let j = i; j < i + k; j++) this.stats.bytesSent += this.desc[j * this.W + 1];
      this.stats.packetsSent += k;
      i += k;
    }
    this.count = 0;
    this.fill = 0;
  }
}
