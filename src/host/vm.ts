// One VM on a host, composed end to end: guest RAM (DeviceMemory), the SoftRoce verbs provider
// over a Link bound to the VM's own IPv4 address (its GID, R7; a MovableLink, so the address can
// be released for migration and bound again, here or on another host), the virtio-rdma device
// processing inline (each kick and each provider completion is handled in the caller's thread, as
// a vCPU exit handled in place), and the guest verbs library opened on it. The CLI
// (`vrdma pingpong`), the two-process tests and the end-to-end benchmarks all build their VMs here.
//
// Two dirty logs (R4) cover the VM's RAM: `dirtyLog` gets every write the device and its provider
// make (the device memory's log), `cpuLog` every write the simulated guest makes (rings, WQEs,
// command buffers, and application buffers written through writeBuffer/fillBuffer), which a real
// VMM would learn from KVM's dirty tracking. Both are off until start()ed; a pre-copy round takes
// the union of their harvests.
//
// Migration (src/migration) takes a VM apart on one host — saveGuestState() beside the device's
// saveState(), releaseAddress() — and Vm.restore() puts it together on another.
import { RdmaDevice } from '../device/device.js';
import { type RingFormat, ringQueueFactory } from '../device/queue-factory.js';
import { type OpenOptions, RdmaGuest } from '../guest/rdma/device.js';
import { Arena } from '../memory/arena.js';
import { DeviceMemory } from '../memory/device-memory.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { DirtyLog } from '../migration/dirty-log.js';
import { firstCompletions } from '../migration/first-completion.js';
import type { QpInstant } from '../migration/messages.js';
import { resumeEach, suspendEach } from '../migration/qp-steps.js';
import { LossyLink, type LossyOptions } from '../net/lossy.js';
import { CaptureLink } from '../net/capture.js';
import { type LinkOpener, MovableLink, type MovableLinkCounters } from '../net/movable-link.js';
import { NetError, NetErrorCode } from '../net/errors.js';
import { UdpLink } from '../net/udp-link.js';
import { BatchedUdpLink } from '../net/batched-udp-link.js';
import { MAX_SHARDS, ShardedVerbs } from '../nic/shard/sharded-verbs.js';
import type { ShardProviderOptions } from '../nic/shard/shard-worker.js';
import type { Link } from '../nic/link.js';
import { SoftRoce, type SoftRoceOptions } from '../nic/soft/index.js';
import { DEFAULT_DRIVER_BYTES, DRIVER_AREA_GPA, GuestVm, decodeVmGuestState } from './guest-vm.js';

const MiB = 1024 * 1024;
const DEFAULT_RAM_BYTES = 32 * MiB;
const ARENA_BYTES = 4 * MiB;

export interface VmOptions {
  /** The VM's IPv4 address: its GID 0 and the address its link binds (127.0.1.x on one machine). */
  ip: string;
  /** Guest RAM, one region at GPA 0; default 32 MiB. */
  ramBytes?: number;
  /** Guest RAM kept for rings and command buffers; the rest is for data buffers. Default 4 MiB. */
  driverBytes?: number;
  /** A link to use instead of a UdpLink bound to `ip` (the loopback hub in one process); it can be bound once. */
  link?: Link;
  /**
   * Bind the address now (default). False builds the VM with its address unbound: a migration
   * destination restores the device first and then calls bindAddress().
   */
  bindAddress?: boolean;
  /**
   * Opens the socket that holds the VM's address, at each bind (a host pool's main thread holds it:
   * pool/pool-sockets.ts); default a UdpLink bound to `ip` here. Not with `link`.
   */
  openSocket?: LinkOpener;
  /** UDP port to bind when no link is given; default 4791. */
  port?: number;
  /** The UDP link copies sends into pooled buffers (default); false is the baseline for benchmarks. */
  pooledSends?: boolean;
  /** Batch the socket's calls (sendmmsg, recvmmsg) when the addon is present (default); false: one dgram call per datagram. */
  batched?: boolean;
  /** Record every packet to this pcap file. */
  capturePath?: string;
  /** Make the network misbehave: drop, duplicate, reorder and delay a fraction of what is sent. */
  lossy?: LossyOptions;
  provider?: SoftRoceOptions;
  /**
   * Ring formats the device offers (default split and packed, as a durable backend's device,
   * src/backend/durable-vm.ts). A migration's destination must offer every feature the guest
   * negotiated, packed rings among them.
   */
  rings?: readonly RingFormat[];
  open?: OpenOptions;
  /** Wrap the VM's link outermost (a host agent's counters, its own loss switch); applied once per VM built. */
  wrapLink?: (link: Link) => Link;
  /**
   * Run the device's QPs in this many threads (QP shards, src/nic/shard): 1 (default) runs them
   * all here. More needs the native addon (a steering group on the VM's address) and does not
   * go with `link`, `openSocket`, `lossy`, `capturePath` or `wrapLink`, nor migrate yet.
   */
  qpShards?: number;
  /** With qpShards: move QPs from busy shards to idle ones this often (ShardedVerbs.balance). */
  qpBalanceMs?: number;
}

export class Vm extends GuestVm {
  private closed = false;

  private constructor(
    readonly ip: string,
    readonly dm: DeviceMemory,
    readonly link: Link,
    /** The socket side of `link` (under any lossy or capture wrapper): what moves with the VM. */
    private readonly address: MovableLink,
    readonly verbs: SoftRoce | ShardedVerbs,
    readonly device: RdmaDevice,
    guest: RdmaGuest,
    data: Arena,
    /** Writes of the device and its provider to guest RAM (also `dm.dirtyLog`). */
    readonly dirtyLog: DirtyLog,
    /** Writes of the simulated guest (its vCPU) to guest RAM. */
    readonly cpuLog: DirtyLog,
    cpuMemory: GuestMemory,
  ) {
    super(guest, data, cpuMemory);
  }

  static async open(options: VmOptions): Promise<Vm> {
    const ramBytes = options.ramBytes ?? DEFAULT_RAM_BYTES;
    const driverBytes = options.driverBytes ?? DEFAULT_DRIVER_BYTES;
    if (DRIVER_AREA_GPA + driverBytes >= ramBytes) throw new RangeError(`ramBytes ${ramBytes} leaves no room for data past the driver area`);
    const shards = Vm.shardsOf(options);
    const { address, link } = await Vm.links(shards === 1 ? options : { ...options, openSocket: () => BatchedUdpLink.open({ ip: options.ip, port: options.port, qpnSteering: shards, readiness: 'loop' }) });
    if (options.bindAddress ?? true) await address.bind();
    const dm = DeviceMemory.create({ ramBytes, arenaBytes: ARENA_BYTES });
    dm.addRegion(0, ramBytes);
    const { dirtyLog, cpuLog, cpuMemory } = Vm.logs(dm);
    let verbs: SoftRoce | ShardedVerbs;
    try {
      verbs = shards === 1 ? new SoftRoce(dm, link, options.provider) : await ShardedVerbs.open(dm, link, { shards, provider: shardProvider(options.provider), dirtyLog, balanceEveryMs: options.qpBalanceMs });
    } catch (err) {
      await link.close();
      throw err;
    }
    const device = new RdmaDevice({ verbs, dm, vmIp: options.ip, inline: true, queueFactory: ringQueueFactory('wasm', options.rings) });
    const driver = new Arena(DRIVER_AREA_GPA, driverBytes);
    const guest = RdmaGuest.open(device.transport, cpuMemory, driver, options.open);
    const dataBase = DRIVER_AREA_GPA + driverBytes;
    return new Vm(options.ip, dm, link, address, verbs, device, guest, new Arena(dataBase, ramBytes - dataBase), dirtyLog, cpuLog, cpuMemory);
  }

  /**
   * A migrated VM on this host (the coordinator's destination, src/migration): over `dm`, whose
   * RAM already holds the guest's pages, a fresh provider and device take the saved device state
   * (R9), the guest driver and the VM's buffer allocator take theirs, and the VM's address is bound
   * here (R7). Its QPs come back SUSPENDED: the caller resumes them. StateError, GuestError or
   * MemoryError if a state is refused; nothing is left bound then.
   */
  static async restore(
    parts: { ip: string; dm: DeviceMemory; deviceState: Uint8Array; guestState: Uint8Array },
    options: Omit<VmOptions, 'ip' | 'ramBytes' | 'driverBytes' | 'open'> = {},
  ): Promise<Vm> {
    const { ip, dm } = parts;
    if ((options.qpShards ?? 1) !== 1) throw new RangeError('a VM whose QPs run in shards cannot be restored from a saved state yet');
    const saved = decodeVmGuestState(parts.guestState);
    const { address, link } = await Vm.links({ ...options, ip });
    const { dirtyLog, cpuLog, cpuMemory } = Vm.logs(dm);
    const verbs = new SoftRoce(dm, link, options.provider);
    const device = new RdmaDevice({ verbs, dm, vmIp: ip, inline: true, queueFactory: ringQueueFactory('wasm', options.rings) });
    try {
      device.restoreState(parts.deviceState);
      const guest = RdmaGuest.restore(device.transport, cpuMemory, saved.driver);
      const vm = new Vm(ip, dm, link, address, verbs, device, guest, Arena.fromState(saved.data), dirtyLog, cpuLog, cpuMemory);
      if (options.bindAddress ?? true) await address.bind();
      return vm;
    } catch (err) {
      verbs.close();
      await link.close();
      throw err;
    }
  }

  /**
   * Vet a device and guest state taken while the VM ran (the migration's STATE_PREVIEW): restore
   * them over `scratch`, memory laid out as the VM's, with the address left unbound, and close the
   * result. Throws what restore would throw. It runs every step of the switchover's restore once
   * before the switchover, so that step does not run cold.
   */
  static async vet(
    parts: { ip: string; scratch: DeviceMemory; deviceState: Uint8Array; guestState: Uint8Array },
    options: Omit<VmOptions, 'ip' | 'ramBytes' | 'driverBytes' | 'open' | 'bindAddress' | 'capturePath' | 'link'> = {},
  ): Promise<void> {
    const vm = await Vm.restore({ ip: parts.ip, dm: parts.scratch, deviceState: parts.deviceState, guestState: parts.guestState }, { ...options, bindAddress: false });
    await vm.close();
  }

  /** The VM's address as a movable link, under any lossy or capture wrapper asked for. */
  private static async links(options: VmOptions): Promise<{ address: MovableLink; link: Link }> {
    const given = options.link;
    let once = given;
    const address = new MovableLink(options.ip, async () => {
      if (given === undefined && options.openSocket !== undefined) return options.openSocket();
      if (given === undefined) return UdpLink.open({ ip: options.ip, port: options.port, pooledSends: options.pooledSends, batched: options.batched });
      if (once === undefined) throw new NetError(NetErrorCode.Closed, `${options.ip}: a VM given its link cannot bind another`);
      once = undefined;
      return given;
    }, given?.localPort ?? options.port);
    let link: Link = address;
    if (options.lossy !== undefined) link = new LossyLink(link, options.lossy);
    if (options.capturePath !== undefined) link = await CaptureLink.open(link, options.capturePath);
    if (options.wrapLink !== undefined) link = options.wrapLink(link);
    return { address, link };
  }

  /** The QP shards asked for, checked against the options they do not go with. */
  private static shardsOf(options: VmOptions): number {
    const n = options.qpShards ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SHARDS) throw new RangeError(`qpShards must be an integer in [1, ${MAX_SHARDS}], got ${n}`);
    if (n === 1) return 1;
    const clash: string[] = (['link', 'openSocket', 'lossy', 'capturePath', 'wrapLink'] as const).filter((k) => options[k] !== undefined);
    if (options.bindAddress === false) clash.push('bindAddress');
    if (clash.length > 0) throw new RangeError(`qpShards ${n} does not go with ${clash.join(', ')}: every shard holds its own socket on the VM's address`);
    return n;
  }

  /** The two dirty logs over `dm` (R4) and guest RAM as the vCPU writes it. */
  private static logs(dm: DeviceMemory): { dirtyLog: DirtyLog; cpuLog: DirtyLog; cpuMemory: GuestMemory } {
    const dirtyLog = DirtyLog.forDevice(dm);
    const cpuLog = DirtyLog.forDevice(dm);
    dm.dirtyLog = dirtyLog;
    return { dirtyLog, cpuLog, cpuMemory: dm.guest.withLog(cpuLog) };
  }

  /** R6, for a migration: suspend every QP that can be, QP by QP (qp-steps.ts). */
  suspendAll(policy: 'rnr-nak' | 'drop'): QpInstant[] {
    return suspendEach(this.verbs, this.device.core.qps.keys(), policy);
  }

  resumeAll(qpns: readonly number[]): QpInstant[] {
    return resumeEach(this.verbs, qpns);
  }

  /** The QP blackouts' ends: the provider's completions are taken in this thread (first-completion.ts). */
  firstCompletions(qpns: readonly number[], watchMs: number): Promise<Map<number, number>> {
    return firstCompletions(this.verbs, qpns, watchMs);
  }

  /** The provider's counters (its own object, live). Async as a durable VM's, fetched from its worker. */
  async providerCounters(): Promise<SoftRoce['counters']> {
    return this.verbs.counters;
  }

  /** The keys of every MR the device holds, [lkey, rkey]. */
  async mrKeys(): Promise<[number, number][]> {
    return [...this.device.core.mrs.values()].map((mr) => [mr.lkey, mr.rkey]);
  }

  /** Whether a socket holds the VM's address here. */
  get addressBound(): boolean {
    return this.address.isBound;
  }

  /** Packets the provider sent through the VM's address, and while it was released (lost; R8). */
  get addressCounters(): Readonly<MovableLinkCounters> {
    return { ...this.address.counters };
  }

  /**
   * R7, source side: give up the VM's address (close its socket) once the sends already made
   * have left. Suspends nothing itself: suspend the QPs first, or their packets are lost.
   * Resolves when another host can bind the address.
   */
  releaseAddress(): Promise<void> {
    return this.address.release();
  }

  /**
   * R7, destination side (or the source again, when a migration is abandoned): bind the VM's
   * address with a new socket. Rejects with NetError ADDRESS_IN_USE while another host holds it.
   */
  bindAddress(): Promise<void> {
    return this.address.bind();
  }

  /** Stop the provider's QPs and timers, then release the address (and finish any capture). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // ACKs are coalesced and sent from a later turn of the event loop (src/nic/soft/qp.ts): let
    // those owed go out, or a peer would wait for a retransmission the closed QP never answers.
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
    this.verbs.close();
    await this.link.close();
    if (this.verbs instanceof ShardedVerbs) await this.verbs.stopped;
  }
}

/** The provider options a worker shard can take (no functions, no kernel instances). */
function shardProvider(p: SoftRoceOptions | undefined): ShardProviderOptions {
  if (p === undefined) return {};
  if (p.kernels !== undefined || p.beforeAtomic !== undefined) throw new RangeError('QP shards take no provider kernels or beforeAtomic hook');
  const { engine, limits, portMtu, windowPsns, budgetPackets, retryBackoffCeilingMs } = p;
  return { engine, limits, portMtu, windowPsns, budgetPackets, retryBackoffCeilingMs };
}
