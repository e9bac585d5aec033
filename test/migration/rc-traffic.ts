// Checked RC traffic between two guests for the migration tests and benchmark: on every QP each
// side posts `ops` operations — even ones SENDs, odd ones RDMA WRITEs into the peer's slots — and
// keeps `window` of them in flight, while keeping `recvDepth` receives posted. Every completion is
// checked as it is polled: a QP's send completions must come in posting order, each once, with
// success; each receive must carry the payload the peer's next SEND had. The traffic stops
// (pause), saves its progress as plain data and resumes from it on another VM: the guest objects
// are found again by QPN and CQN. Not a test file.
import { CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import type { RdmaGuest } from '../../src/guest/rdma/device.js';
import { pattern } from '../e2e/pattern.js';

export interface TrafficConfig {
  /** 0 or 1: which guest this is (payloads differ by side). */
  side: number;
  messageBytes: number;
  window: number;
  recvDepth: number;
  /** WRITE target slots per QP in the peer's area. */
  slots: number;
  ops: number;
}

/** Where one QP's buffers are: its own (send and receive) and the peer's WRITE area. */
export interface QpLayout {
  qpn: number;
  sendBase: number;
  recvBase: number;
  writeArea: number;
  peerWriteArea: number;
  peerRkey: number;
}

export interface QpProgress extends QpLayout {
  posted: number;
  completed: number;
  received: number;
  recvPosted: number;
}

export interface TrafficState {
  config: TrafficConfig;
  cqn: number;
  lkey: number;
  qps: QpProgress[];
  violations: string[];
}

const RECV_TAG = 2n ** 48n;

export function payloadSeed(side: number, qpIndex: number, op: number): number {
  return (side * 7919 + qpIndex * 104729 + op * 31 + 1) >>> 0;
}

/** The bytes the last WRITE of `ops` operations left in each of the peer's slots (null: never written). */
export function expectedWrites(config: TrafficConfig, writerSide: number, qpIndex: number): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = Array.from({ length: config.slots }, () => null);
  for (let op = 1; op < config.ops; op += 2) out[(op >> 1) % config.slots] = pattern(payloadSeed(writerSide, qpIndex, op), config.messageBytes);
  return out;
}

export class RcTraffic {
  private running = false;
  private readonly byQpn = new Map<number, number>();
  private readonly qps: GuestQp[];
  private readonly cq: GuestCq;
  private loop: Promise<void> = Promise.resolve();
  /** When each QP (by QPN) first completed anything under this traffic object. */
  firstCompletionAt = new Map<number, number>();

  constructor(private readonly guest: RdmaGuest, private readonly write: (gpa: number, bytes: Uint8Array) => void, private readonly read: (gpa: number, len: number) => Uint8Array, readonly state: TrafficState) {
    const cq = guest.cqs.get(state.cqn);
    if (cq === undefined) throw new Error(`no CQ ${state.cqn} in the guest`);
    this.cq = cq;
    this.qps = state.qps.map((p, i) => {
      const qp = guest.qps.get(p.qpn);
      if (qp === undefined) throw new Error(`no QP ${p.qpn} in the guest`);
      this.byQpn.set(p.qpn, i);
      return qp;
    });
  }

  get done(): boolean {
    const half = Math.ceil(this.state.config.ops / 2);
    return this.state.qps.every((q) => q.completed === this.state.config.ops && q.received === half);
  }

  /** Post what the window allows and poll until paused or done. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.fill();
    this.loop = this.run();
  }

  /** Stop posting and polling; resolves with the progress (the application's state). */
  async pause(): Promise<TrafficState> {
    this.running = false;
    await this.loop;
    return structuredClone(this.state);
  }

  /** Resolves once done (or rejects after `timeoutMs`). */
  async finished(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.done) {
      if (Date.now() > deadline) throw new Error(`traffic not done in ${timeoutMs} ms: ${JSON.stringify(this.state.qps.map((q) => [q.qpn, q.posted, q.completed, q.received]))}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      const n = this.poll();
      if (this.done) this.running = false;
      // Busy-poll while completions come; nap when none did, so host processes sharing cores
      // leave each other (and the network) time to run.
      if (n > 0) await new Promise((resolve) => setImmediate(resolve));
      else await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  private fill(): void {
    const c = this.state.config;
    const half = Math.ceil(c.ops / 2);
    this.state.qps.forEach((p, i) => {
      const qp = this.qps[i];
      while (p.recvPosted < half && p.recvPosted - p.received < c.recvDepth) {
        const r = p.recvPosted++;
        qp.postRecv([{ wrId: RECV_TAG + BigInt(i) * 2n ** 32n + BigInt(r), sgList: [{ addr: p.recvBase + (r % c.recvDepth) * c.messageBytes, length: c.messageBytes, lkey: this.state.lkey }] }]);
      }
      while (p.posted < c.ops && p.posted - p.completed < c.window) {
        const op = p.posted++;
        const bytes = pattern(payloadSeed(c.side, i, op), c.messageBytes);
        const at = p.sendBase + (op % c.window) * c.messageBytes;
        this.write(at, bytes);
        const wrId = BigInt(i) * 2n ** 32n + BigInt(op);
        const sgList = [{ addr: at, length: c.messageBytes, lkey: this.state.lkey }];
        if (op % 2 === 0) qp.postSend([{ wrId, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList }]);
        else qp.postSend([{ wrId, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, sgList, remoteAddr: p.peerWriteArea + ((op >> 1) % c.slots) * c.messageBytes, rkey: p.peerRkey }]);
      }
    });
  }

  private violation(message: string): void {
    if (this.state.violations.length < 32) this.state.violations.push(message);
  }

  /** Poll the CQ once, check every completion, refill the windows. */
  poll(): number {
    const c = this.state.config;
    const cqes = this.cq.poll();
    for (const e of cqes) {
      const i = this.byQpn.get(e.qpNum);
      if (i === undefined) {
        this.violation(`completion for unknown QP ${e.qpNum}`);
        continue;
      }
      const p = this.state.qps[i];
      if (!this.firstCompletionAt.has(p.qpn)) this.firstCompletionAt.set(p.qpn, performance.timeOrigin + performance.now());
      if (e.status !== CqeStatus.Success) this.violation(`QP ${p.qpn} wr ${e.wrId}: status ${e.status}`);
      if (e.wrId >= RECV_TAG) {
        const r = Number(e.wrId & 0xffffffffn);
        if (r !== p.received) this.violation(`QP ${p.qpn}: receive ${r} completed, expected ${p.received}`);
        const want = pattern(payloadSeed(1 - c.side, i, 2 * r), c.messageBytes);
        const have = this.read(p.recvBase + (r % c.recvDepth) * c.messageBytes, c.messageBytes);
        if (e.byteLen !== c.messageBytes || !Buffer.from(have).equals(Buffer.from(want))) this.violation(`QP ${p.qpn}: receive ${r} carries the wrong bytes`);
        p.received++;
      } else {
        const op = Number(e.wrId & 0xffffffffn);
        if (op !== p.completed) this.violation(`QP ${p.qpn}: send ${op} completed, expected ${p.completed}`);
        p.completed++;
      }
    }
    if (cqes.length > 0) this.fill();
    return cqes.length;
  }
}
