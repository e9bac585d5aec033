// A host process's agent: it holds VMs (src/host/vm.ts; or, given a backend pool, DurableVms whose
// devices run in the pool's workers, src/backend/durable-vm.ts), each with a checked workload
// (src/workload) on RC QPs to a peer VM on another host, and does what it is asked over IPC
// (agent-client.ts is the other end): open a VM, set up and connect its QPs, run and drain the
// workload, report status and counters, verify memory against the reference model, close.
// Everything the VMs do goes through the guest library, as a guest would.
import { randomInt } from 'node:crypto';
import { AccessFlag, QpTypeCode } from '../device/abi.js';
import type { GuestCq, GuestQp } from '../guest/rdma/objects.js';
import { type IncomingMigration, type MigrationListener, type MigrationProgress, type MigrationReport, listenForMigration, migrateOut } from '../migration/index.js';
import type { PrecopyPolicy } from '../migration/precopy.js';
import { LossyLink, type LossyOptions } from '../net/lossy.js';
import type { LinkOpener } from '../net/movable-link.js';
import { CaptureLink } from '../net/capture.js';
import { ObservedLink } from '../net/observed-link.js';
import { PcapWriter } from '../net/pcap-writer.js';
import type { Link } from '../nic/link.js';
import { QP_STATE_NAMES, QpState } from '../nic/qp-state.js';
import type { SoftRoceOptions } from '../nic/soft/options.js';
import { PathMtu } from '../nic/types.js';
import { type MigrationPhase, type VmMetricsSnapshot, createHostRegistry, departedSnapshot } from '../observe/metrics.js';
import type { Logger } from '../observe/log.js';
import { type WorkloadConfig, areaBytes, checkConfig } from '../workload/config.js';
import { compareArea } from '../workload/model.js';
import { type VerifyResult, Workload, type WorkloadStatus } from '../workload/workload.js';
import { type RcAttributes, rcToInit, rcToRts } from './connect.js';
import { vmGuestAccess } from './guest-access.js';
import { type AgentCarry, type QpBinding, decodeCarry, encodeCarry } from './agent-carry.js';
import { type OpTable, sendEvent } from './ipc.js';
import { Vm } from './vm.js';
import type { BackendPool } from '../backend/backend-pool.js';
import { DurableVm } from '../backend/durable-vm.js';
import { type StreamEndpoint, type StreamRun, WriteStream } from './write-stream.js';
import type client from 'prom-client';

const MiB = 1024 * 1024;
const ALL_ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
/** Guest RAM past the workload area: rings and command buffers (the VM's driver area) and slack. */
const RAM_OVERHEAD_BYTES = 8 * MiB;

/** RC attributes of the workload's connections. */
export const WORKLOAD_RC: Partial<RcAttributes> = {
  // Many READs and atomics in flight per QP.
  maxRdAtomic: 16,
  maxDestRdAtomic: 16,
  // Ask peers for the shortest RNR wait (0.01 ms) and retry for ever: a suspended responder's RNR
  // NAKs then cost little time and never exhaust the retry budget (R6, R8).
  minRnrTimer: 1,
  rnrRetry: 7,
  // 4.096 us * 2^16 = 268 ms local ACK timeout: retryCnt 7 of them (about 2 s) must outlast the
  // time a migrating VM's address is bound nowhere (released on the source, not yet bound on the
  // destination) on a loaded host, or a peer's QP exhausts its retries and goes to ERR (R8).
  timeout: 16,
  retryCnt: 7,
};

export interface OpenVmArgs {
  name: string;
  ip: string;
  ramBytes?: number;
  lossy?: LossyOptions;
  /** Start with the loss switched off (setLoss turns it on); default on. */
  lossEnabled?: boolean;
  capturePath?: string;
  provider?: SoftRoceOptions;
}

/** A host's offer to take a VM in (listenForMigration on this host's address). */
export interface ListenArgs {
  host: string;
  /** TCP port; 0 for any (the answer says which). */
  port: number;
  /** This host's network misbehaviour for the VM it takes in (switched as the source's was). */
  lossy?: LossyOptions;
  provider?: SoftRoceOptions;
  /**
   * Names of VMs this host holds outside this agent (a host pool's other VM tasks, as they were
   * when the listener was set up): an incoming VM of one of these names is refused.
   */
  heldElsewhere?: string[];
}

export interface MigrateArgs {
  vm: string;
  host: string;
  port: number;
  suspendPolicy?: 'rnr-nak' | 'drop';
  precopy?: Partial<PrecopyPolicy>;
  blackoutWatchMs?: number;
}

/** What the destination says once a migrated VM runs on it. */
export interface AcceptedVm {
  name: string;
  ip: string;
  qpns: number[];
  resumed: number[];
}

/** The migration progress event a source agent sends its parent. */
export interface MigrationEvent extends MigrationProgress {
  type: 'migration';
  vm: string;
}

/** What one VM tells its peer to connect: its address, QPs, first PSNs and workload area. */
export interface WorkloadEndpoint {
  ip: string;
  qpns: number[];
  psns: number[];
  areaGpa: number;
  rkey: number;
}

export interface VmStatus {
  name: string;
  ip: string;
  migrationPhase: MigrationPhase;
  workload: WorkloadStatus | null;
  /** Request packets sent again, RNR NAKs received and sent, over all QPs. */
  retransmitted: number;
  rnrNaksReceived: number;
  rnrNaksSent: number;
  providerEvents: Record<string, number>;
  qpns: number[];
  lkey: number;
  rkey: number;
}

export interface AgentVerifyResult extends VerifyResult {
  qpStates: string[];
  qpns: number[];
  /** The workload MR's keys, as the device holds them. */
  lkey: number;
  rkey: number;
}

/** A VM the agent holds: its device in this thread, or in a backend pool's worker. */
type AgentVm = Vm | DurableVm;

/** The provider's counters as the agent reports them. */
interface ProviderCounterView {
  readonly events: ReadonlyMap<string, number>;
  readonly dropped: ReadonlyMap<string, number>;
  readonly internalErrors: number;
}

interface HeldVm {
  name: string;
  vm: AgentVm;
  /**
   * The provider's counters: a Vm's own (live), a DurableVm's as last fetched from its worker
   * (refreshed before every status, verify and metrics answer).
   */
  counters: ProviderCounterView;
  link: ObservedLink;
  lossy: LossyLink | null;
  bindings: QpBinding[];
  pd: number;
  cq: GuestCq | null;
  qps: GuestQp[];
  lkey: number;
  rkey: number;
  workload: Workload | null;
  migrationPhase: MigrationPhase;
  dirtyPages: number;
  /** An RDMA WRITE stream (write-stream.ts), when one was set up. */
  stream: WriteStream | null;
}

/** RAM a VM needs to run `config`'s workload. */
export function ramBytesFor(config: WorkloadConfig): number {
  return Math.ceil((areaBytes(config) + RAM_OVERHEAD_BYTES) / MiB) * MiB;
}

export class HostAgent {
  private readonly vms = new Map<string, HeldVm>();
  /** VMs that migrated away: kept for the metrics' phase (their counters went with them). */
  private readonly departed = new Map<string, { ip: string; dirtyPages: number }>();
  private readonly listeners = new Map<number, { listener: MigrationListener<AgentVm>; accepted: Promise<AcceptedVm> }>();
  readonly registry: client.Registry;

  /**
   * `emit` tells the agent's parent something unasked (migration progress): the process's IPC
   * channel by default, a worker's port when the agent runs a VM task of a host pool. With
   * `backends`, every VM's device runs as a durable backend in that pool (its socket and the
   * agent's link wrappers on this thread, socket: 'main'); without, in this thread. With
   * `socketOf`, a VM's address is bound by the socket it opens (a host pool's main thread holds
   * it, pool/pool-sockets.ts) rather than by a UdpLink of this thread.
   */
  constructor(
    readonly host: string,
    private readonly log: Logger,
    private readonly emit: (event: Record<string, unknown>) => void = sendEvent,
    private readonly backends: BackendPool | null = null,
    private readonly socketOf: ((ip: string) => LinkOpener) | null = null,
  ) {
    this.registry = createHostRegistry(host, () => this.metricsSnapshot());
  }

  /** Whether this host's VMs run on durable backends. */
  get durable(): boolean {
    return this.backends !== null;
  }

  /** A new VM of this host's sort. */
  private async newVm(a: OpenVmArgs, wrapLink: (link: Link) => Link): Promise<AgentVm> {
    if (this.backends === null) return Vm.open({ ip: a.ip, ramBytes: a.ramBytes, capturePath: a.capturePath, provider: a.provider, wrapLink, openSocket: this.socketOf?.(a.ip) });
    // The packets pass this thread (socket: 'main'): a capture sits over the socket side, under the agent's wrappers.
    const writer = a.capturePath === undefined ? null : await PcapWriter.create(a.capturePath);
    const wrap = writer === null ? wrapLink : (link: Link) => wrapLink(CaptureLink.over(link, writer));
    try {
      return await DurableVm.open(this.backends, { ip: a.ip, ramBytes: a.ramBytes, provider: a.provider, socket: 'main', wrapLink: wrap });
    } catch (err) {
      await writer?.close();
      throw err;
    }
  }

  /**
   * Terminate the worker thread running `name`'s device, as a crash would (a durable host only):
   * the device comes back from its journal on a live worker and the workload carries on.
   * Resolves with the dead thread's id.
   */
  async terminateBackendWorker(name: string): Promise<number> {
    const h = this.held(name);
    if (this.backends === null || !(h.vm instanceof DurableVm)) throw new Error(`host ${this.host} runs no durable backends`);
    const id = await this.backends.terminateWorkerOf(h.vm.durable);
    this.log.warn({ vm: name, thread: id }, "terminated the worker running the VM's device");
    return id;
  }

  /** Fetch the provider counters of every VM (a Vm's object is live; a durable VM's come from its worker). */
  async refreshCounters(): Promise<void> {
    await Promise.all([...this.vms.values()].map((h) => this.refresh(h)));
  }

  /** A VM's counters as its provider has them; while a durable VM's backend restarts, the last ones fetched. */
  private async refresh(h: HeldVm): Promise<void> {
    try {
      h.counters = await h.vm.providerCounters();
    } catch {
      // No backend answers now (one is being started from the journal): the counters stay as they were.
    }
  }

  private held(name: string): HeldVm {
    const h = this.vms.get(name);
    if (h === undefined) throw new Error(`no VM named ${name} on host ${this.host}`);
    return h;
  }

  private workloadOf(name: string): Workload {
    const w = this.held(name).workload;
    if (w === null) throw new Error(`VM ${name} has no workload set up`);
    return w;
  }

  async openVm(a: OpenVmArgs): Promise<{ name: string; ip: string }> {
    if (this.vms.has(a.name)) throw new Error(`host ${this.host} already holds a VM named ${a.name}`);
    const wrap = linkWrapper(a.lossy, a.lossEnabled ?? true);
    const vm = await this.newVm(a, wrap.wrapLink);
    const pd = await vm.guest.createPd();
    const mr = await vm.guest.getDmaMr(pd, ALL_ACCESS);
    this.departed.delete(a.name);
    this.vms.set(a.name, {
      name: a.name, vm, counters: await vm.providerCounters(), link: wrap.observed(), lossy: wrap.lossy(), bindings: [], pd, cq: null, qps: [], lkey: mr.lkey, rkey: mr.rkey, workload: null, migrationPhase: 'none', dirtyPages: 0, stream: null,
    });
    this.log.info({ vm: a.name, ip: a.ip, ramBytes: a.ramBytes }, 'VM opened');
    return { name: a.name, ip: a.ip };
  }

  /** Create the workload's CQ and QPs (to INIT, receives posted) and fill its READ sources. */
  async setupWorkload(name: string, config: WorkloadConfig, side: number): Promise<WorkloadEndpoint> {
    checkConfig(config);
    const h = this.held(name);
    if (h.workload !== null) throw new Error(`VM ${name} already runs a workload`);
    const g = h.vm.guest;
    const cq = await g.createCq(config.qps * (config.window + config.recvDepth) + 16);
    const qps: GuestQp[] = [];
    for (let q = 0; q < config.qps; q++) {
      const qp = await g.createQp({
        pd: h.pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn,
        cap: { maxSendWr: config.window, maxRecvWr: config.recvDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 },
      });
      await rcToInit(qp, WORKLOAD_RC);
      qps.push(qp);
    }
    const areaGpa = h.vm.allocBuffer(areaBytes(config), 4096);
    h.cq = cq;
    h.qps = qps;
    h.workload = Workload.create(config, side, this.envOf(h), { areaGpa, lkey: h.lkey, cqn: cq.cqn, qpns: qps.map((qp) => qp.qpn) });
    this.log.info({ vm: name, qps: qps.map((qp) => qp.qpn), areaGpa, areaBytes: areaBytes(config) }, 'workload set up');
    return { ip: h.vm.ip, qpns: qps.map((qp) => qp.qpn), psns: qps.map(() => randomInt(0x1000000)), areaGpa, rkey: h.rkey };
  }

  /** Bring QP q to RTS towards the peer's QP q; `mine` is the endpoint setupWorkload returned. */
  async connect(name: string, mine: WorkloadEndpoint, peer: WorkloadEndpoint, mtu: number, rc: Partial<RcAttributes> = {}): Promise<void> {
    const h = this.held(name);
    const w = this.workloadOf(name);
    if (peer.qpns.length !== h.qps.length) throw new Error(`the peer has ${peer.qpns.length} QPs, ${name} has ${h.qps.length}`);
    const pathMtu = pathMtuOf(mtu);
    for (let q = 0; q < h.qps.length; q++) {
      await rcToRts(h.qps[q], mine.psns[q], { ip: peer.ip, qpn: peer.qpns[q], psn: peer.psns[q] }, { ...WORKLOAD_RC, ...rc, pathMtu });
      h.link.bindQp(h.qps[q].qpn, peer.ip, peer.qpns[q]);
      h.bindings.push({ qpn: h.qps[q].qpn, peerIp: peer.ip, peerQpn: peer.qpns[q] });
    }
    w.setPeer({ areaGpa: peer.areaGpa, rkey: peer.rkey });
    this.log.info({ vm: name, peer: peer.ip, mtu }, 'connected');
  }

  /** Set up the VM's RDMA WRITE stream (its QP to INIT); the endpoint goes to the peer. */
  async setupStream(name: string, bytes?: number): Promise<StreamEndpoint> {
    const h = this.held(name);
    if (h.stream !== null) throw new Error(`VM ${name} already has a write stream`);
    h.stream = await WriteStream.create(h.vm, h.pd, { lkey: h.lkey, rkey: h.rkey }, randomInt(0x1000000), WORKLOAD_RC, bytes);
    return h.stream.mine;
  }

  /** Bring the write stream's QP to RTS towards the peer's stream. */
  async connectStream(name: string, peer: StreamEndpoint, mtu: number): Promise<void> {
    const h = this.held(name);
    if (h.stream === null) throw new Error(`VM ${name} has no write stream`);
    await h.stream.connect(peer, { ...WORKLOAD_RC, pathMtu: pathMtuOf(mtu) });
  }

  /** Run the write stream for `durationMs` with `window` WRITEs of `size` bytes in flight. */
  runStream(name: string, size: number, window: number, durationMs: number): Promise<StreamRun> {
    const h = this.held(name);
    if (h.stream === null) throw new Error(`VM ${name} has no write stream`);
    return h.stream.run(size, window, durationMs);
  }

  start(name: string): void {
    this.workloadOf(name).start();
    this.log.info({ vm: name }, 'workload started');
  }

  /** Stop posting; resolves with the posted operation counts once all have completed. */
  async drain(name: string, timeoutMs?: number): Promise<number[]> {
    const w = this.workloadOf(name);
    await w.drain(timeoutMs);
    this.log.info({ vm: name, ops: w.status().opsPosted }, 'workload drained');
    return w.opsPosted();
  }

  async settle(name: string, peerOps: number[], timeoutMs?: number): Promise<void> {
    await this.workloadOf(name).settle(peerOps, timeoutMs);
  }

  /** Stop the workload where it is (the vCPU stops) and return its state blob. */
  pause(name: string): Uint8Array {
    return this.workloadOf(name).pause();
  }

  /** Continue a paused workload from `blob` on this host's objects of the VM. */
  resume(name: string, blob: Uint8Array): void {
    const h = this.held(name);
    h.workload = Workload.resume(blob, this.envOf(h));
  }

  /** Switch the VM's loss on or off (it must have been opened with `lossy`). */
  setLoss(name: string, enabled: boolean): void {
    const h = this.held(name);
    if (h.lossy === null) throw new Error(`VM ${name} was opened without loss options`);
    h.lossy.enabled = enabled;
  }

  /**
   * Offer to take in one migrating VM at host:port (this host's address). Resolves with the port
   * once listening; acceptedAt(port) gives the VM once it runs here, its workload resumed.
   */
  async listen(a: ListenArgs): Promise<number> {
    // The VM restoreVm built and the carry it came with: resumeGuest runs the workload from it.
    let incoming: { held: HeldVm; carry: AgentCarry } | null = null;
    const listener = listenForMigration<AgentVm>({ host: a.host, port: a.port }, {
      vetVm: (parts) => (this.backends === null ? Vm.vet(parts, { provider: a.provider }) : DurableVm.vet(parts, { provider: a.provider })),
      // Everything that can refuse the VM runs here, before its QPs resume (after that it has
      // answered its peers and must run here).
      restoreVm: async (parts) => {
        const carry = decodeCarry(parts.appState);
        if (this.vms.has(carry.name) || (a.heldElsewhere ?? []).includes(carry.name)) throw new Error(`host ${this.host} already holds a VM named ${carry.name}`);
        const wrap = linkWrapper(a.lossy, false);
        const vm = this.backends === null
          ? await Vm.restore(parts, { provider: a.provider, wrapLink: wrap.wrapLink, openSocket: this.socketOf?.(parts.ip) })
          : await DurableVm.restore(this.backends, parts, { provider: a.provider, socket: 'main', wrapLink: wrap.wrapLink });
        try {
          incoming = { held: this.adopt(vm, carry, wrap, await vm.providerCounters()), carry };
        } catch (err) {
          await vm.close();
          throw err;
        }
        return vm;
      },
      resumeGuest: () => {
        const { held: h, carry } = incoming as { held: HeldVm; carry: AgentCarry };
        h.workload = Workload.resume(carry.workload, this.envOf(h));
        h.migrationPhase = 'resumed';
        this.departed.delete(h.name);
        this.vms.set(h.name, h);
        this.log.info({ vm: h.name, ip: h.vm.ip, qps: h.qps.map((qp) => qp.qpn) }, 'migrated VM resumed here');
      },
    });
    const accepted = listener.accepted.then((m: IncomingMigration<AgentVm>) => {
      const h = (incoming as unknown as { held: HeldVm }).held;
      return { name: h.name, ip: m.vm.ip, qpns: h.qps.map((qp) => qp.qpn), resumed: m.resumed.map((q) => q.qpn) };
    });
    accepted.catch(() => {});
    const { port } = await listener.ready;
    this.listeners.set(port, { listener, accepted });
    this.log.info({ host: a.host, port }, 'listening for a migration');
    return port;
  }

  /** The VM the listener on `port` took in, once it runs here (rejects if that migration failed). */
  async acceptedAt(port: number): Promise<AcceptedVm> {
    const l = this.listeners.get(port);
    if (l === undefined) throw new Error(`host ${this.host} has no migration listener on port ${port}`);
    try {
      return await l.accepted;
    } finally {
      this.listeners.delete(port);
      await l.listener.close();
    }
  }

  /** The destination's half: a restored VM and the source agent's carry become a held VM (not yet running or registered). */
  private adopt(vm: AgentVm, c: AgentCarry, wrap: ReturnType<typeof linkWrapper>, counters: ProviderCounterView): HeldVm {
    const cq = vm.guest.cqs.get(c.cqn);
    if (cq === undefined) throw new Error(`the migrated VM ${c.name} has no CQ ${c.cqn}`);
    const qps = c.qpns.map((qpn) => {
      const qp = vm.guest.qps.get(qpn);
      if (qp === undefined) throw new Error(`the migrated VM ${c.name} has no QP ${qpn}`);
      return qp;
    });
    const link = wrap.observed();
    link.seed(new Map(c.traffic), new Map(c.highestPsns));
    for (const b of c.bindings) link.bindQp(b.qpn, b.peerIp, b.peerQpn);
    const lossy = wrap.lossy();
    if (lossy !== null) lossy.enabled = c.lossEnabled;
    return { name: c.name, vm, counters, link, lossy, bindings: c.bindings, pd: c.pd, cq, qps, lkey: c.lkey, rkey: c.rkey, workload: null, migrationPhase: 'incoming', dirtyPages: c.dirtyPages, stream: null };
  }

  /**
   * Move VM `a.vm` to the agent listening at host:port: pre-copy while the workload runs, then
   * pause it (its state travels with the VM) and switch over. Progress goes to the parent as
   * MigrationEvents. On failure the VM and its workload carry on here.
   */
  async migrate(a: MigrateArgs): Promise<MigrationReport> {
    const h = this.held(a.vm);
    const w = this.workloadOf(a.vm);
    let blob: Uint8Array | null = null;
    this.log.info({ vm: a.vm, to: `${a.host}:${a.port}` }, 'migrating');
    try {
      const report = await migrateOut(h.vm, { host: a.host, port: a.port }, {
        pauseGuest: async () => {
          blob = w.pause();
          return encodeCarry({
            name: h.name, pd: h.pd, lkey: h.lkey, rkey: h.rkey, cqn: (h.cq as GuestCq).cqn, qpns: h.qps.map((qp) => qp.qpn), bindings: h.bindings,
            lossEnabled: h.lossy?.enabled ?? false, traffic: [...h.link.snapshot()], highestPsns: [...h.link.highestPsns()], dirtyPages: h.dirtyPages, workload: blob,
          });
        },
        resumeGuest: () => {
          if (blob !== null) h.workload = Workload.resume(blob, this.envOf(h));
        },
        onProgress: (p) => {
          h.migrationPhase = METRIC_PHASE[p.phase];
          h.dirtyPages = p.dirtyPages;
          this.emit({ type: 'migration', vm: a.vm, ...p } satisfies MigrationEvent);
        },
        suspendPolicy: a.suspendPolicy,
        precopy: a.precopy,
        blackoutWatchMs: a.blackoutWatchMs,
      });
      this.vms.delete(a.vm);
      this.departed.set(a.vm, { ip: h.vm.ip, dirtyPages: h.dirtyPages });
      this.log.info({ vm: a.vm, rounds: report.rounds.length, downtimeMs: report.downtimeMs }, 'migrated out');
      return report;
    } catch (err) {
      h.migrationPhase = 'none';
      this.log.warn({ vm: a.vm, err: (err as Error).message }, 'migration failed; the VM runs here still');
      throw err;
    }
  }

  /** Verify against the model: the peer's posted operation counts and the QPs' states. */
  async verify(name: string, peerOps: number[]): Promise<AgentVerifyResult> {
    const h = this.held(name);
    const w = this.workloadOf(name);
    const own = w.opsPosted();
    const result = w.verify(peerOps, (have) => {
      const m = compareArea(w.config, w.side, own, peerOps, have);
      return m === null ? null : `QP ${m.qp}: ${m.region} byte ${m.offsetBytes} is ${m.have}, the model says ${m.want}`;
    });
    const states: QpState[] = [];
    for (const qp of h.qps) states.push((await qp.query()).qpState as QpState);
    states.forEach((s, q) => {
      if (s === QpState.Err) result.problems.push(`QP ${q} (QPN ${h.qps[q].qpn}) is in ERR`);
    });
    const keys = await h.vm.mrKeys();
    if (!keys.some(([lkey, rkey]) => lkey === h.lkey && rkey === h.rkey)) {
      result.problems.push(`the device holds no MR with lkey ${h.lkey} and rkey ${h.rkey}`);
    }
    await this.refresh(h);
    const internal = h.counters.internalErrors;
    if (internal > 0) result.problems.push(`the provider contained ${internal} internal errors`);
    result.ok = result.problems.length === 0;
    this.log.info({ vm: name, ok: result.ok, problems: result.problems.slice(0, 5) }, 'verified');
    return { ...result, qpStates: states.map((s) => QP_STATE_NAMES[s] ?? String(s)), qpns: h.qps.map((qp) => qp.qpn), lkey: h.lkey, rkey: h.rkey };
  }

  async status(name: string): Promise<VmStatus> {
    const h = this.held(name);
    await this.refresh(h);
    let retransmitted = 0;
    let rnrNaksReceived = 0;
    let rnrNaksSent = 0;
    for (const t of h.link.snapshot().values()) {
      retransmitted += t.retransmitted;
      rnrNaksReceived += t.rnrNaksReceived;
      rnrNaksSent += t.rnrNaksSent;
    }
    return {
      name, ip: h.vm.ip, migrationPhase: h.migrationPhase, workload: h.workload?.status() ?? null, retransmitted, rnrNaksReceived, rnrNaksSent,
      providerEvents: Object.fromEntries(h.counters.events), qpns: h.qps.map((qp) => qp.qpn), lkey: h.lkey, rkey: h.rkey,
    };
  }

  vmNames(): string[] {
    return [...this.vms.keys()];
  }

  async closeVm(name: string): Promise<void> {
    const h = this.held(name);
    h.workload?.pause();
    this.vms.delete(name);
    await h.vm.close();
    this.log.info({ vm: name }, 'VM closed');
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) await l.listener.close();
    this.listeners.clear();
    for (const name of [...this.vms.keys()]) await this.closeVm(name);
  }

  metricsSnapshot(): VmMetricsSnapshot[] {
    const gone = [...this.departed].map(([vm, d]) => departedSnapshot(vm, d));
    return gone.concat([...this.vms.values()].map((h) => {
      const traffic = h.link.snapshot();
      const progress = new Map((h.workload?.status().qps ?? []).map((p) => [p.qpn, p.byStatus]));
      const qps = h.qps.map((qp) => ({ qpn: qp.qpn, traffic: traffic.get(qp.qpn) ?? zeroTraffic(), byStatus: progress.get(qp.qpn) ?? {} }));
      return {
        vm: h.name, ip: h.vm.ip, qps, unattributed: traffic.get(0) ?? null,
        providerEvents: Object.fromEntries(h.counters.events), dropped: Object.fromEntries(h.counters.dropped),
        dirtyPages: h.dirtyPages, migrationPhase: h.migrationPhase,
      };
    }));
  }

  private envOf(h: HeldVm) {
    return {
      memory: vmGuestAccess(h.vm),
      cq: (cqn: number) => {
        if (h.cq === null || h.cq.cqn !== cqn) throw new Error(`VM ${h.name} has no CQ ${cqn}`);
        return h.cq;
      },
      qp: (qpn: number) => {
        const qp = h.qps.find((x) => x.qpn === qpn);
        if (qp === undefined) throw new Error(`VM ${h.name} has no QP ${qpn}`);
        return qp;
      },
    };
  }
}

/** The coordinator's phases as the metrics name them. */
const METRIC_PHASE: Record<MigrationProgress['phase'], MigrationPhase> = {
  connect: 'precopy', precopy: 'precopy', 'stop-and-copy': 'stop-and-copy', switchover: 'switchover', 'blackout-watch': 'migrated-out', done: 'migrated-out',
};

/**
 * The agent's wrapping of a VM's link (outermost, over the VM's movable address): a loss switch
 * when asked for, and the per-QP counters. The pieces are known once the VM builds its link.
 */
function linkWrapper(lossyOptions: LossyOptions | undefined, enabled: boolean) {
  let observed: ObservedLink | null = null;
  let lossy: LossyLink | null = null;
  return {
    wrapLink(link: Link): Link {
      if (lossyOptions !== undefined) link = lossy = new LossyLink(link, { ...lossyOptions, enabled });
      return (observed = new ObservedLink(link));
    },
    observed(): ObservedLink {
      if (observed === null) throw new Error('the VM built no link');
      return observed;
    },
    lossy: () => lossy,
  };
}

const MTU_ENUM = new Map<number, PathMtu>([[256, PathMtu.Mtu256], [512, PathMtu.Mtu512], [1024, PathMtu.Mtu1024], [2048, PathMtu.Mtu2048], [4096, PathMtu.Mtu4096]]);

function pathMtuOf(mtu: number): PathMtu {
  const pathMtu = MTU_ENUM.get(mtu);
  if (pathMtu === undefined) throw new RangeError(`MTU ${mtu} is not one of 256, 512, 1024, 2048, 4096`);
  return pathMtu;
}

function zeroTraffic() {
  return { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, retransmitted: 0, rnrNaksSent: 0, rnrNaksReceived: 0 };
}

type A = Record<string, unknown>;

/** The agent's IPC operations (see AgentClient for their typed form). */
export function agentOps(agent: HostAgent, shutdown: () => Promise<void>): OpTable {
  return {
    ping: () => ({ host: agent.host, pid: process.pid, vms: agent.vmNames(), durable: agent.durable }),
    openVm: (a: A) => agent.openVm(a as unknown as OpenVmArgs),
    setupWorkload: (a: A) => agent.setupWorkload(a.vm as string, a.config as WorkloadConfig, a.side as number),
    connect: (a: A) => agent.connect(a.vm as string, a.mine as WorkloadEndpoint, a.peer as WorkloadEndpoint, a.mtu as number, a.rc as Partial<RcAttributes> | undefined),
    start: (a: A) => agent.start(a.vm as string),
    drain: (a: A) => agent.drain(a.vm as string, a.timeoutMs as number | undefined),
    settle: (a: A) => agent.settle(a.vm as string, a.peerOps as number[], a.timeoutMs as number | undefined),
    pause: (a: A) => agent.pause(a.vm as string),
    resume: (a: A) => agent.resume(a.vm as string, a.blob as Uint8Array),
    setLoss: (a: A) => agent.setLoss(a.vm as string, a.enabled as boolean),
    setupStream: (a: A) => agent.setupStream(a.vm as string, a.bytes as number | undefined),
    connectStream: (a: A) => agent.connectStream(a.vm as string, a.peer as StreamEndpoint, a.mtu as number),
    runStream: (a: A) => agent.runStream(a.vm as string, a.size as number, a.window as number, a.durationMs as number),
    listen: (a: A) => agent.listen(a as unknown as ListenArgs),
    accepted: (a: A) => agent.acceptedAt(a.port as number),
    migrate: (a: A) => agent.migrate(a as unknown as MigrateArgs),
    verify: (a: A) => agent.verify(a.vm as string, a.peerOps as number[]),
    status: (a: A) => agent.status(a.vm as string),
    metrics: async () => {
      await agent.refreshCounters();
      return agent.registry.getMetricsAsJSON();
    },
    closeVm: (a: A) => agent.closeVm(a.vm as string),
    terminateWorkerOf: (a: A) => agent.terminateBackendWorker(a.vm as string),
    shutdown: async () => {
      await shutdown();
    },
  };
}
