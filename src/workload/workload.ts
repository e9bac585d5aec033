// The checked RDMA workload one VM runs against its peer: on every RC QP, the fixed schedule of
// WRITE with immediate, SEND, READ and fetch-add (schedule.ts), at most `window` outstanding,
// receives kept posted, every completion checked as it is polled (status, order, opcode, bytes,
// immediate, fetched value, payload), and the application's own writes of its source buffers.
// It runs as a busy-polling application does, one turn per event-loop turn. `pause()` stops it
// between turns and hands back its state; `Workload.resume()` continues from that state on the
// guest objects of another host (the migration carries both).
import { CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../device/abi.js';
import type { Cqe } from '../device/cqe.js';
import type { GuestCq, GuestQp } from '../guest/rdma/objects.js';
import type { RecvRequest, SendRequest } from '../guest/rdma/wqe.js';
import { type WorkloadConfig, checkConfig, qpRegions, type QpRegions } from './config.js';
import { TurnTimer } from '../util/turn-timer.js';
import { WorkloadError, WorkloadErrorCode } from './errors.js';
import { Stream, fillPayload, findPayloadMismatch, payloadKey } from './pattern.js';
import { OpKind, messageAt, messagesOf, opKind, opSeq } from './schedule.js';
import {
  MAX_VIOLATIONS_KEPT, type PeerArea, type QpProgress, type WorkloadState, type WorkloadViolation, decodeState, encodeState,
} from './state.js';

/** The guest's own (vCPU) access to its RAM: the application's writes and reads of its buffers. */
export interface GuestAccess {
  write(gpa: number, bytes: Uint8Array): void;
  /** A view of guest RAM (may be live). */
  view(gpa: number, lenBytes: number): Uint8Array;
}

/** The guest objects a workload runs on: found by handle, so a restored guest can supply them. */
export interface WorkloadEnv {
  memory: GuestAccess;
  cq(cqn: number): GuestCq;
  qp(qpn: number): GuestQp;
}

export type WorkloadPhase = 'ready' | 'running' | 'draining' | 'drained' | 'paused';

export interface WorkloadStatus {
  phase: WorkloadPhase;
  opsPosted: number;
  opsCompleted: number;
  recvCompleted: number;
  bytesCompleted: number;
  violationCount: number;
  qps: QpProgress[];
}

export interface VerifyResult {
  ok: boolean;
  /** Why not, one line each (empty when ok). */
  problems: string[];
  areaBytes: number;
}

const QP_SHIFT = 40n;
const RECV_BIT = 1n << 39n;
/** CQEs taken per turn: bounds one turn's work so packets and IPC get their turns too. */
const POLL_BATCH = 256;
/** Idle turns spun with setImmediate before sleeping a millisecond between polls. */
const SPIN_TURNS = 64;

const EXPECTED_OPCODE: Record<OpKind, CqeOpcode> = {
  [OpKind.WriteImm]: CqeOpcode.RdmaWrite,
  [OpKind.Send]: CqeOpcode.Send,
  [OpKind.Read]: CqeOpcode.RdmaRead,
  [OpKind.FetchAdd]: CqeOpcode.FetchAdd,
};

export class Workload {
  private phase: WorkloadPhase = 'ready';
  private readonly regions: QpRegions;
  private readonly qpIndex = new Map<number, number>();
  private readonly guestQps: GuestQp[];
  private readonly cq: GuestCq;
  private readonly scratch: Uint8Array;
  private readonly timer = new TurnTimer(() => this.turn());
  private idleTurns = 0;
  private drainWaiters: (() => void)[] = [];
  private loopError: unknown = null;

  private constructor(private readonly s: WorkloadState, private readonly env: WorkloadEnv) {
    this.regions = qpRegions(s.config);
    this.cq = env.cq(s.cqn);
    this.guestQps = s.qps.map((p, q) => {
      this.qpIndex.set(p.qpn, q);
      return env.qp(p.qpn);
    });
    this.scratch = new Uint8Array(s.config.messageBytes);
  }

  /**
   * A new workload on QPs in INIT or later (receives may be posted from INIT): fills the regions
   * the peer will READ and posts the first receives. `areaGpa` must hold areaBytes(config).
   */
  static create(config: WorkloadConfig, side: number, env: WorkloadEnv, area: { areaGpa: number; lkey: number; cqn: number; qpns: number[] }): Workload {
    checkConfig(config);
    if (side !== 0 && side !== 1) throw new WorkloadError(WorkloadErrorCode.BadConfig, `side must be 0 or 1, got ${side}`);
    if (area.qpns.length !== config.qps) throw new WorkloadError(WorkloadErrorCode.BadConfig, `${config.qps} QPs wanted, ${area.qpns.length} given`);
    const qps = area.qpns.map((qpn): QpProgress => ({ qpn, sendPosted: 0, sendCompleted: 0, recvPosted: 0, recvCompleted: 0, bytesCompleted: 0, byStatus: {} }));
    const w = new Workload({ version: 1, config, side, areaGpa: area.areaGpa, lkey: area.lkey, cqn: area.cqn, peer: null, qps, violations: [], violationCount: 0 }, env);
    w.fillReadSources();
    for (let q = 0; q < config.qps; q++) w.postRecvs(q);
    return w;
  }

  /** Continue from a state blob (pause() on another host) on this host's guest objects. */
  static resume(blob: Uint8Array, env: WorkloadEnv, run = true): Workload {
    const w = new Workload(decodeState(blob), env);
    w.phase = 'paused';
    if (run) w.start();
    return w;
  }

  get config(): WorkloadConfig {
    return this.s.config;
  }

  get side(): number {
    return this.s.side;
  }

  get areaGpa(): number {
    return this.s.areaGpa;
  }

  /** Where the peer's area is: needed before the first operation. */
  setPeer(peer: PeerArea): void {
    this.s.peer = { ...peer };
  }

  /** Start posting (or continue after a pause). */
  start(): void {
    if (this.phase === 'running') return;
    if (this.s.peer === null) throw new WorkloadError(WorkloadErrorCode.WrongPhase, 'the peer area is not known yet');
    if (this.phase === 'drained' || this.phase === 'draining') throw new WorkloadError(WorkloadErrorCode.WrongPhase, `cannot start from ${this.phase}`);
    this.phase = 'running';
    this.schedule(true);
  }

  /** Stop posting new operations; resolves once every posted one has completed. */
  async drain(timeoutMs = 30_000): Promise<void> {
    if (this.phase === 'paused' || this.phase === 'ready') throw new WorkloadError(WorkloadErrorCode.WrongPhase, `cannot drain from ${this.phase}`);
    if (this.phase === 'running') this.phase = 'draining';
    if (this.allSendsDone()) this.phase = 'drained';
    if (this.phase === 'drained') return;
    await this.waitFor(() => new Promise<void>((resolve) => this.drainWaiters.push(resolve)), timeoutMs, 'posted operations to complete');
  }

  /** Stop posting and polling at once (the vCPU stops); returns the state blob to resume from. */
  pause(): Uint8Array {
    this.timer.cancel();
    if (this.phase !== 'drained') this.phase = 'paused';
    return encodeState(this.s);
  }

  /** The state blob without stopping (for inspection). */
  saveState(): Uint8Array {
    return encodeState(this.s);
  }

  /**
   * Keep polling (posting nothing) until every message the peer posted has been received: `peerOps`
   * is the peer's posted operation count per QP, once it has drained.
   */
  async settle(peerOps: readonly number[], timeoutMs = 30_000): Promise<void> {
    const done = () => this.s.qps.every((p, q) => p.recvCompleted >= messagesOf(peerOps[q] ?? 0));
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      this.pollOnce();
      if (Date.now() > deadline) throw new WorkloadError(WorkloadErrorCode.Timeout, 'the peer\'s messages did not all arrive');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Check the run: no violation seen while polling, every posted operation completed once,
   * every peer message received once, nothing left in the CQ, and the area matches the model.
   */
  verify(peerOps: readonly number[], compare: (have: Uint8Array) => string | null): VerifyResult {
    const problems: string[] = [];
    for (const v of this.s.violations) problems.push(`QP ${v.qp}: ${v.what}`);
    if (this.s.violationCount > this.s.violations.length) problems.push(`and ${this.s.violationCount - this.s.violations.length} more violations`);
    this.s.qps.forEach((p, q) => {
      if (p.sendCompleted !== p.sendPosted) problems.push(`QP ${q}: ${p.sendPosted} operations posted, ${p.sendCompleted} completed`);
      const want = messagesOf(peerOps[q] ?? 0);
      if (p.recvCompleted !== want) problems.push(`QP ${q}: the peer sent ${want} messages, ${p.recvCompleted} received`);
    });
    const extra = this.cq.poll();
    if (extra.length > 0) problems.push(`${extra.length} completions nobody asked for (first wr_id ${extra[0].wrId})`);
    const bytes = this.env.memory.view(this.s.areaGpa, this.regions.blockBytes * this.s.config.qps);
    const mismatch = compare(bytes);
    if (mismatch !== null) problems.push(mismatch);
    return { ok: problems.length === 0, problems, areaBytes: bytes.length };
  }

  /** Posted operation counts per QP (what the peer's model needs). */
  opsPosted(): number[] {
    return this.s.qps.map((p) => p.sendPosted);
  }

  status(): WorkloadStatus {
    let opsPosted = 0;
    let opsCompleted = 0;
    let recvCompleted = 0;
    let bytesCompleted = 0;
    for (const p of this.s.qps) {
      opsPosted += p.sendPosted;
      opsCompleted += p.sendCompleted;
      recvCompleted += p.recvCompleted;
      bytesCompleted += p.bytesCompleted;
    }
    return {
      phase: this.phase, opsPosted, opsCompleted, recvCompleted, bytesCompleted, violationCount: this.s.violationCount,
      qps: this.s.qps.map((p) => ({ ...p, byStatus: { ...p.byStatus } })),
    };
  }

  /** An exception the loop caught (a bug or a broken guest object), or null. */
  get error(): unknown {
    return this.loopError;
  }

  // ---- the loop ------------------------------------------------------------------------------

  private schedule(now: boolean): void {
    if (now || this.idleTurns < SPIN_TURNS) this.timer.soon();
    else this.timer.after(1);
  }

  private turn(): void {
    if (this.phase !== 'running' && this.phase !== 'draining') return;
    let progress = 0;
    try {
      progress = this.pollOnce();
      if (this.phase === 'running') for (let q = 0; q < this.s.config.qps; q++) progress += this.postOps(q);
    } catch (err) {
      this.loopError = err;
      this.violation(0, `the workload loop threw: ${(err as Error).message}`);
      this.phase = 'paused';
      return;
    }
    if (this.phase === 'draining' && this.allSendsDone()) {
      this.phase = 'drained';
      for (const w of this.drainWaiters.splice(0)) w();
      return;
    }
    this.idleTurns = progress > 0 ? 0 : this.idleTurns + 1;
    this.schedule(false);
  }

  private allSendsDone(): boolean {
    return this.s.qps.every((p) => p.sendCompleted === p.sendPosted);
  }

  /** Poll one batch, check each completion, refill receives. Returns how many were polled. */
  private pollOnce(): number {
    const cqes = this.cq.poll(POLL_BATCH);
    const touched = new Set<number>();
    for (const c of cqes) {
      const q = this.qpIndex.get(c.qpNum);
      if (q === undefined) {
        this.violation(0, `completion for unknown QPN ${c.qpNum} (wr_id ${c.wrId})`);
        continue;
      }
      const p = this.s.qps[q];
      p.byStatus[c.status] = (p.byStatus[c.status] ?? 0) + 1;
      if (c.opcode === CqeOpcode.Recv || c.opcode === CqeOpcode.RecvRdmaWithImm) this.completeRecv(q, c);
      else this.completeSend(q, c);
      touched.add(q);
    }
    for (const q of touched) this.postRecvs(q);
    return cqes.length;
  }

  private completeSend(q: number, c: Cqe): void {
    const p = this.s.qps[q];
    const j = p.sendCompleted;
    if (j >= p.sendPosted) return this.violation(q, `send completion with nothing outstanding (wr_id ${c.wrId})`);
    const want = (BigInt(q) << QP_SHIFT) | BigInt(j);
    if (c.wrId !== want) return this.violation(q, `send completion wr_id ${c.wrId}, expected ${want}`);
    p.sendCompleted++;
    const kind = opKind(j);
    const k = opSeq(j);
    if (c.status !== CqeStatus.Success) return this.violation(q, `operation ${j} completed with status ${CqeStatus[c.status] ?? c.status}`);
    if (c.opcode !== EXPECTED_OPCODE[kind]) return this.violation(q, `operation ${j}: opcode ${c.opcode}, expected ${EXPECTED_OPCODE[kind]}`);
    const M = this.s.config.messageBytes;
    const slot = k % this.s.config.slots;
    const block = this.blockGpa(q);
    if (kind === OpKind.Read) {
      const at = this.env.memory.view(block + this.regions.readDst + slot * M, M);
      const bad = findPayloadMismatch(at, payloadKey(this.s.config.seed, 1 - this.s.side, q, Stream.Read, slot), this.scratch);
      if (bad >= 0) this.violation(q, `READ ${k}: byte ${bad} differs from the peer's source`);
    } else if (kind === OpKind.FetchAdd) {
      const at = this.env.memory.view(block + this.regions.faResult + 8 * slot, 8);
      const old = new DataView(at.buffer, at.byteOffset, 8).getBigUint64(0, true);
      if (old !== BigInt(k)) this.violation(q, `fetch-add ${k} returned ${old}`);
    }
    p.bytesCompleted += kind === OpKind.FetchAdd ? 8 : M;
  }

  private completeRecv(q: number, c: Cqe): void {
    const p = this.s.qps[q];
    const r = p.recvCompleted;
    if (r >= p.recvPosted) return this.violation(q, `receive completion with nothing posted (wr_id ${c.wrId})`);
    const want = (BigInt(q) << QP_SHIFT) | RECV_BIT | BigInt(r);
    if (c.wrId !== want) return this.violation(q, `receive completion wr_id ${c.wrId}, expected ${want}`);
    p.recvCompleted++;
    if (c.status !== CqeStatus.Success) return this.violation(q, `receive ${r} completed with status ${CqeStatus[c.status] ?? c.status}`);
    const M = this.s.config.messageBytes;
    const msg = messageAt(r);
    if (c.byteLen !== M) this.violation(q, `message ${r}: ${c.byteLen} bytes, expected ${M}`);
    if (msg.send) {
      if (c.opcode !== CqeOpcode.Recv) return this.violation(q, `message ${r}: opcode ${c.opcode}, expected a SEND`);
      const at = this.env.memory.view(this.blockGpa(q) + this.regions.recvDst + (r % this.s.config.slots) * M, M);
      const bad = findPayloadMismatch(at, payloadKey(this.s.config.seed, 1 - this.s.side, q, Stream.Send, msg.seq), this.scratch);
      if (bad >= 0) this.violation(q, `SEND ${msg.seq}: byte ${bad} differs`);
    } else {
      if (c.opcode !== CqeOpcode.RecvRdmaWithImm) return this.violation(q, `message ${r}: opcode ${c.opcode}, expected a WRITE with immediate`);
      if (c.immData !== msg.seq >>> 0) this.violation(q, `WRITE ${msg.seq}: immediate ${c.immData}`);
      const at = this.env.memory.view(this.blockGpa(q) + this.regions.writeDst + (msg.seq % this.s.config.slots) * M, M);
      const bad = findPayloadMismatch(at, payloadKey(this.s.config.seed, 1 - this.s.side, q, Stream.Write, msg.seq), this.scratch);
      if (bad >= 0) this.violation(q, `WRITE ${msg.seq}: byte ${bad} differs`);
    }
  }

  private postRecvs(q: number): void {
    const p = this.s.qps[q];
    const c = this.s.config;
    const wrs: RecvRequest[] = [];
    const block = this.blockGpa(q);
    while (p.recvPosted - p.recvCompleted < c.recvDepth) {
      const r = p.recvPosted++;
      wrs.push({
        wrId: (BigInt(q) << QP_SHIFT) | RECV_BIT | BigInt(r),
        sgList: [{ addr: block + this.regions.recvDst + (r % c.slots) * c.messageBytes, length: c.messageBytes, lkey: this.s.lkey }],
      });
    }
    if (wrs.length > 0) this.guestQps[q].postRecv(wrs);
  }

  private postOps(q: number): number {
    const p = this.s.qps[q];
    const c = this.s.config;
    const peer = this.s.peer as PeerArea;
    const M = c.messageBytes;
    const block = this.blockGpa(q);
    const peerBlock = peer.areaGpa + q * this.regions.blockBytes;
    const wrs: SendRequest[] = [];
    while (p.sendPosted - p.sendCompleted < c.window) {
      const j = p.sendPosted++;
      const k = opSeq(j);
      const slot = k % c.slots;
      const wrId = (BigInt(q) << QP_SHIFT) | BigInt(j);
      const flags = SendFlag.SIGNALED;
      const sge = (off: number, length: number) => [{ addr: block + off + slot * (off === this.regions.faResult ? 8 : M), length, lkey: this.s.lkey }];
      switch (opKind(j)) {
        case OpKind.WriteImm:
          this.writePayload(block + this.regions.writeSrc + slot * M, payloadKey(c.seed, this.s.side, q, Stream.Write, k));
          wrs.push({ wrId, opcode: SendOpcode.RdmaWriteWithImm, flags, sgList: sge(this.regions.writeSrc, M), remoteAddr: peerBlock + this.regions.writeDst + slot * M, rkey: peer.rkey, imm: k >>> 0 });
          break;
        case OpKind.Send:
          this.writePayload(block + this.regions.sendSrc + slot * M, payloadKey(c.seed, this.s.side, q, Stream.Send, k));
          wrs.push({ wrId, opcode: SendOpcode.Send, flags, sgList: sge(this.regions.sendSrc, M) });
          break;
        case OpKind.Read:
          wrs.push({ wrId, opcode: SendOpcode.RdmaRead, flags, sgList: sge(this.regions.readDst, M), remoteAddr: peerBlock + this.regions.readSrc + slot * M, rkey: peer.rkey });
          break;
        case OpKind.FetchAdd:
          wrs.push({ wrId, opcode: SendOpcode.AtomicFetchAndAdd, flags, sgList: sge(this.regions.faResult, 8), remoteAddr: peerBlock + this.regions.counter, rkey: peer.rkey, compareAdd: 1n });
          break;
      }
    }
    if (wrs.length > 0) this.guestQps[q].postSend(wrs);
    return wrs.length;
  }

  /** The application fills a source slot (a vCPU write: it goes through the guest's write path). */
  private writePayload(gpa: number, key: number): void {
    const bytes = this.scratch;
    fillPayload(bytes, key);
    this.env.memory.write(gpa, bytes);
  }

  private fillReadSources(): void {
    const c = this.s.config;
    for (let q = 0; q < c.qps; q++) {
      for (let s = 0; s < c.slots; s++) {
        this.writePayload(this.blockGpa(q) + this.regions.readSrc + s * c.messageBytes, payloadKey(c.seed, this.s.side, q, Stream.Read, s));
      }
    }
  }

  private blockGpa(q: number): number {
    return this.s.areaGpa + q * this.regions.blockBytes;
  }

  private violation(qp: number, what: string): void {
    this.s.violationCount++;
    if (this.s.violations.length < MAX_VIOLATIONS_KEPT) this.s.violations.push({ qp, what });
  }

  private async waitFor(wait: () => Promise<void>, timeoutMs: number, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WorkloadError(WorkloadErrorCode.Timeout, `${what}: not within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([wait(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export type { WorkloadViolation };
