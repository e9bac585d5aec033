// A stream of RDMA WRITEs from one VM to another, as perftest's ib_write_bw runs it: one RC QP
// per side, a window of WRITEs kept in flight, each completion answered by the next post. The
// target side only responds (its device places the payloads and ACKs); the writer runs the loop
// for a given time and counts what completed. A host agent holds one per VM on request (the
// scaling benchmark drives it through a host pool); unlike the checked workload it verifies no
// payloads, only that every WRITE completed successfully and in order, and a migration does not
// carry it (its QP moves with the device, but the agent on the destination holds no stream).
import { CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../device/abi.js';
import type { GuestCq, GuestQp } from '../guest/rdma/objects.js';
import type { SendRequest } from '../guest/rdma/wqe.js';
import { type RcAttributes, rcToInit, rcToRts } from './connect.js';
import type { RdmaGuest } from '../guest/rdma/device.js';

/** What a stream needs of its VM (a Vm, or a DurableVm whose device runs in a backend pool). */
export interface StreamVm {
  readonly ip: string;
  readonly guest: RdmaGuest;
  allocBuffer(bytes: number, align?: number): number;
}

/** Largest window the stream takes. */
export const MAX_STREAM_WINDOW = 256;
/** The stream buffer's size unless asked otherwise: a run's window of WRITEs must fit in it. */
export const DEFAULT_STREAM_BYTES = 1 << 20;
export const MAX_STREAM_BYTES = 64 << 20;

export interface StreamEndpoint {
  ip: string;
  qpn: number;
  psn: number;
  /** The stream buffer's GPA and size, and the rkey WRITEs into it use. */
  addr: number;
  bytes: number;
  rkey: number;
}

export interface StreamRun {
  /** WRITEs completed in the run (all successful, in order). */
  messages: number;
  bytes: number;
  seconds: number;
}

export class WriteStream {
  private peer: StreamEndpoint | null = null;
  private running = false;

  private constructor(readonly vm: StreamVm, private readonly cq: GuestCq, readonly qp: GuestQp, private readonly lkey: number, readonly mine: StreamEndpoint) {}

  /** A QP (to INIT) and a buffer of `bytes` in guest RAM, in `pd` with the MR's keys. */
  static async create(vm: StreamVm, pd: number, keys: { lkey: number; rkey: number }, psn: number, rc: Partial<RcAttributes>, bytes = DEFAULT_STREAM_BYTES): Promise<WriteStream> {
    if (!Number.isSafeInteger(bytes) || bytes < 4096 || bytes > MAX_STREAM_BYTES) throw new RangeError(`stream buffer must be in [4096, ${MAX_STREAM_BYTES}] bytes`);
    const g = vm.guest;
    const cq = await g.createCq(2 * MAX_STREAM_WINDOW);
    const qp = await g.createQp({
      pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: MAX_STREAM_WINDOW, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 },
    });
    await rcToInit(qp, rc);
    const addr = vm.allocBuffer(bytes, 4096);
    return new WriteStream(vm, cq, qp, keys.lkey, { ip: vm.ip, qpn: qp.qpn, psn, addr, bytes, rkey: keys.rkey });
  }

  async connect(peer: StreamEndpoint, rc: Partial<RcAttributes>): Promise<void> {
    await rcToRts(this.qp, this.mine.psn, { ip: peer.ip, qpn: peer.qpn, psn: peer.psn }, rc);
    this.peer = peer;
  }

  /** Keep `window` WRITEs of `size` bytes in flight for `durationMs`, then wait for the last. */
  async run(size: number, window: number, durationMs: number): Promise<StreamRun> {
    const peer = this.peer;
    if (peer === null) throw new Error('the write stream is not connected');
    if (!Number.isSafeInteger(window) || window < 1 || window > MAX_STREAM_WINDOW) throw new RangeError(`window must be in [1, ${MAX_STREAM_WINDOW}]`);
    const room = Math.min(this.mine.bytes, peer.bytes);
    if (!Number.isSafeInteger(size) || size < 1 || size * window > room) throw new RangeError(`a window of ${window} WRITEs of ${size} bytes does not fit the ${room}-byte stream buffers`);
    if (!(durationMs > 0 && durationMs <= 600_000)) throw new RangeError('durationMs must be in (0, 600000]');
    if (this.running) throw new Error('the write stream is already running');
    this.running = true;
    try {
      return await this.loop(peer, size, window, durationMs);
    } finally {
      this.running = false;
    }
  }

  private async loop(peer: StreamEndpoint, size: number, window: number, durationMs: number): Promise<StreamRun> {
    const wr = (i: number): SendRequest => ({
      wrId: BigInt(i), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED,
      sgList: [{ addr: this.mine.addr + (i % window) * size, length: size, lkey: this.lkey }],
      remoteAddr: peer.addr + (i % window) * size, rkey: peer.rkey,
    });
    const started = performance.now();
    const endAt = started + durationMs;
    const completed = await keepWritesInFlight(this.qp, this.cq, window, wr, () => performance.now() < endAt);
    const seconds = (performance.now() - started) / 1000;
    return { messages: completed, bytes: completed * size, seconds };
  }
}

/**
 * Keep up to `window` WRITEs in flight on `qp`: WRITE i is `wr(i)` (wr_id i, signaled), and each
 * completion is answered by the next post while `more(posted)` allows. Resolves with the number
 * completed once every posted WRITE has; throws if one fails or completes out of order.
 */
export async function keepWritesInFlight(qp: GuestQp, cq: GuestCq, window: number, wr: (i: number) => SendRequest, more: (posted: number) => boolean): Promise<number> {
  let posted = 0;
  let completed = 0;
  const first: SendRequest[] = [];
  while (posted < window && more(posted)) first.push(wr(posted++));
  if (first.length > 0) qp.postSend(first);
  while (completed < posted) {
    const wcs = cq.poll();
    if (wcs.length === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    for (const wc of wcs) {
      if (wc.status !== CqeStatus.Success) throw new Error(`WRITE ${wc.wrId} failed: status ${CqeStatus[wc.status] ?? wc.status}`);
      if (wc.wrId !== BigInt(completed)) throw new Error(`WRITE ${wc.wrId} completed where ${completed} was due`);
      completed++;
    }
    const next: SendRequest[] = [];
    for (let i = 0; i < wcs.length && more(posted); i++) next.push(wr(posted++));
    if (next.length > 0) qp.postSend(next);
  }
  return completed;
}
