// Checked RC traffic between two guests for the migration tests and benchmark: on every QP each
// side posts `ops` operations in a cycle of four — SEND, RDMA WRITE with immediate into one of
// the peer's slots, RDMA READ of that slot back, fetch-and-add on the peer's counter — keeping
// `window` of them in flight and `recvDepth` receives posted. Every completion is checked as it
// is polled: a QP's send completions must come in posting order, each once, with success; a
// READ must return what the WRITE before it put there, a fetch-add the count of the ones before
// it; each receive must carry the payload (SEND) or the immediate (WRITE) the peer sent next. The traffic stops
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

/** The cycle of operations: op n is OP_CYCLE[n % 4]. */
const enum Op {
  Send = 0,
  WriteImm = 1,
  Read = 2,
  FetchAdd = 3,
}

export function payloadSeed(side: number, qpIndex: number, op: number): number {
  return (side * 7919 + qpIndex * 104729 + op * 31 + 1) >>> 0;
}

/** Bytes of a QP's WRITE area: the slots, then the 8-byte fetch-add counter. */
export function writeAreaBytes(config: TrafficConfig): number {
  return config.slots * config.messageBytes + 8;
}

/** Receives a side takes per QP from `ops` operations of its peer (SENDs and WRITEs with immediate). */
export function receivesOf(ops: number): number {
  return Math.floor(ops / 4) * 2 + Math.min(ops % 4, 2);
}

/** The peer operation behind receive `r`. */
function opOfReceive(r: number): number {
  return 4 * Math.floor(r / 2) + (r % 2);
}

function slotOf(config: TrafficConfig, op: number): number {
  return (op >> 2) % config.slots;
}

/** The bytes the last WRITE of `ops` operations left in each of the peer's slots (null: never written). */
export function expectedWrites(config: TrafficConfig, writerSide: number, qpIndex: number): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = Array.from({ length: config.slots }, () => null);
  for (let op = Op.WriteImm; op < config.ops; op += 4) out[slotOf(config, op)] = pattern(payloadSeed(writerSide, qpIndex, op), config.messageBytes);
  return out;
}

/** The peer's counter once `ops` operations are done: one per fetch-add. */
export function expectedCounter(ops: number): number {
  return Math.floor((ops + 4 - 1 - Op.FetchAdd) / 4);
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
    const recvs = receivesOf(this.state.config.ops);
    return this.state.qps.every((q) => q.completed === this.state.config.ops && q.received === recvs);
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
    const recvs = receivesOf(c.ops);
    this.state.qps.forEach((p, i) => {
      const qp = this.qps[i];
      while (p.recvPosted < recvs && p.recvPosted - p.received < c.recvDepth) {
        const r = p.recvPosted++;
        qp.postRecv([{ wrId: RECV_TAG + BigInt(i) * 2n ** 32n + BigInt(r), sgList: [{ addr: p.recvBase + (r % c.recvDepth) * c.messageBytes, length: c.messageBytes, lkey: this.state.lkey }] }]);
      }
      while (p.posted < c.ops && p.posted - p.completed < c.window) {
        const op = p.posted++;
        // The op's own buffer: its payload (SEND, WRITE), or where the READ or fetch-add lands.
        const at = p.sendBase + (op % c.window) * c.messageBytes;
        const wrId = BigInt(i) * 2n ** 32n + BigInt(op);
        const flags = SendFlag.SIGNALED;
        const lkey = this.state.lkey;
        switch ((op % 4) as Op) {
          case Op.Send:
          case Op.WriteImm: {
            this.write(at, pattern(payloadSeed(c.side, i, op), c.messageBytes));
            const sgList = [{ addr: at, length: c.messageBytes, lkey }];
            if (op % 4 === Op.Send) qp.postSend([{ wrId, opcode: SendOpcode.Send, flags, sgList }]);
            else qp.postSend([{ wrId, opcode: SendOpcode.RdmaWriteWithImm, flags, sgList, imm: op, remoteAddr: p.peerWriteArea + slotOf(c, op) * c.messageBytes, rkey: p.peerRkey }]);
            break;
          }
          case Op.Read:
            qp.postSend([{ wrId, opcode: SendOpcode.RdmaRead, flags, sgList: [{ addr: at, length: c.messageBytes, lkey }], remoteAddr: p.peerWriteArea + slotOf(c, op - 1) * c.messageBytes, rkey: p.peerRkey }]);
            break;
          case Op.FetchAdd:
            qp.postSend([{ wrId, opcode: SendOpcode.AtomicFetchAndAdd, flags, sgList: [{ addr: at, length: 8, lkey }], remoteAddr: p.peerWriteArea + c.slots * c.messageBytes, rkey: p.peerRkey, compareAdd: 1n }]);
            break;
        }
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
        const op = opOfReceive(r);
        if (op % 4 === Op.Send) {
          const want = pattern(payloadSeed(1 - c.side, i, op), c.messageBytes);
          const have = this.read(p.recvBase + (r % c.recvDepth) * c.messageBytes, c.messageBytes);
          if (e.byteLen !== c.messageBytes || !Buffer.from(have).equals(Buffer.from(want))) this.violation(`QP ${p.qpn}: receive ${r} carries the wrong bytes`);
        } else if (e.immData !== op) {
          this.violation(`QP ${p.qpn}: receive ${r} has immediate ${e.immData}, expected ${op}`);
        }
        p.received++;
      } else {
        const op = Number(e.wrId & 0xffffffffn);
        if (op !== p.completed) this.violation(`QP ${p.qpn}: send ${op} completed, expected ${p.completed}`);
        const at = p.sendBase + (op % c.window) * c.messageBytes;
        if (e.status === CqeStatus.Success && op % 4 === Op.Read) {
          const want = pattern(payloadSeed(c.side, i, op - 1), c.messageBytes);
          if (!Buffer.from(this.read(at, c.messageBytes)).equals(Buffer.from(want))) this.violation(`QP ${p.qpn}: READ ${op} returned the wrong bytes`);
        }
        if (e.status === CqeStatus.Success && op % 4 === Op.FetchAdd) {
          const v = new DataView(this.read(at, 8).buffer);
          const was = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
          if (was !== op >> 2) this.violation(`QP ${p.qpn}: fetch-add ${op} returned ${was}, expected ${op >> 2}`);
        }
        p.completed++;
      }
    }
    if (cqes.length > 0) this.fill();
    return cqes.length;
  }
}
