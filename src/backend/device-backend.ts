// A durable device backend: one virtio-rdma device (RdmaDevice over SoftRoce, and a UDP socket on
// the VM's address or the packet rings to the thread that holds it) running in this thread over
// guest memory another thread created, for a driver in that thread (transport-proxy.ts). What makes it durable is its journal (journal.ts):
//   - the device runs with its used entries unpublished (deferPublish); at the end of each turn
//     of its loop (the passes a doorbell asked for), the whole device state (R9) and those
//     unpublished entries are committed, and only then published;
//   - no packet leaves before a commit covers the state that produced it: the provider sends
//     through a gate (commit-gate.ts) that holds packets until the turn's commit;
//   - every configuration call is committed before it is answered.
// So the guest and the peers never see anything the journal does not hold, and a backend started
// in another thread after this one died (restore) takes the device up from the last entry: the
// device's rings and objects, every QP's PSNs and windows, the completions owed. Work done after
// the last commit is redone: a popped WQE is popped again and its packets sent again with the
// same PSNs (a retransmission to the peer), a packet received again is placed again (the same
// bytes) — nothing a guest or peer saw is lost or repeated.
//
// What cannot be redone is an atomic's effect on memory. Before a responder executes one, the
// device is committed with an intent: the QP and PSN, the target word and its value before and
// after; the turn's next commit holds the atomic's saved result (its responder resource), so a
// retransmission is answered from it. A backend restored from an intent entry settles it from the
// word (atomic-intent.ts): not run, run (the state brought forward), or, if something else wrote
// the word, in doubt — that QP goes to ERR rather than guess. Used entries are written again
// where the dead backend had not published them; a packed ring's slot that shows its used
// descriptor already may since hold the driver's next available one, so it is passed over.
//
// One thread owns the device at a time: start() takes the control block's ownership word with
// Atomics.compareExchange and every commit checks it still holds it.
import { threadId } from 'node:worker_threads';
import { EventType } from '../device/abi.js';
import { RdmaDevice } from '../device/device.js';
import { type RingFormat, ringQueueFactory } from '../device/queue-factory.js';
import { captureDevice } from '../device/state/capture.js';
import { decodeDeviceState, encodeDeviceState } from '../device/state/codec.js';
import { DeviceMemory } from '../memory/device-memory.js';
import type { Gpa } from '../memory/gpa.js';
import type { MemoryLayout } from '../memory/layout.js';
import type { Region } from '../memory/region-table.js';
import { MovableLink } from '../net/movable-link.js';
import { NetError, NetErrorCode } from '../net/errors.js';
import { UdpLink } from '../net/udp-link.js';
import { type Link, ROCE_UDP_PORT } from '../nic/link.js';
import { canSuspend } from '../nic/qp-state.js';
import { SoftRoce, type SoftRoceOptions } from '../nic/soft/index.js';
import { decodeSoftRoceState } from '../nic/soft/state/codec.js';
import { PackedQueue } from '../virtio/packed-queue.js';
import type { DeviceQueue } from '../virtio/queue.js';
import { SplitQueue } from '../virtio/split-queue.js';
import { DirtyLog } from '../migration/dirty-log.js';
import type { SharedLogSpec } from './device-logs.js';
import { type Call, CallServer } from './call-channel.js';
import { CommitGate } from './commit-gate.js';
import { ControlBlock, W } from './control-block.js';
import { BackendError, BackendErrorCode } from './errors.js';
import { type IntentOutcome, readTarget, settleIntent, stateWithAtomicDone } from './atomic-intent.js';
import { Journal } from './journal.js';
import { type AtomicIntent, type JournalEntry, type UsedTriple, decodeJournalEntry, journalEntryChunks } from './journal-entry.js';
import { RingLink } from './ring-link.js';
import type { DeviceDescription } from './transport-proxy.js';

export interface BackendSpec {
  /** The VM's IPv4 address: its GID and the address the backend's socket binds. */
  ip: string;
  /** UDP port; default 4791. */
  port?: number;
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
  /** The device's control block (control-block.ts). */
  control: SharedArrayBuffer;
  provider?: SoftRoceOptions;
  /** Batch the socket's calls when the addon is present (default). */
  batched?: boolean;
  /**
   * The VM's socket is held by another thread (socket-side.ts): packets go through these rings
   * (ring-link.ts) and the backend binds nothing. Without them the backend binds the address itself.
   */
  rings?: { tx: SharedArrayBuffer; rx: SharedArrayBuffer };
  /**
   * Commit to the journal (default). False runs the device in its worker without one — the
   * baseline that prices durability — and such a device cannot come back when its worker dies.
   */
  journal?: boolean;
  /**
   * The device's dirty log (R4), placed by the driver's thread (device-logs.ts): the backend marks
   * every write it makes to guest RAM there while the driver's log is started.
   */
  dirtyLog?: SharedLogSpec;
  /**
   * Leave the VM's address unbound at the start (a socket of its own only): it was released for a
   * migration, and another host may hold it now.
   */
  unbound?: boolean;
}

/**
 * The ring formats a backend's device offers: both. A packed ring's slots go back to the driver
 * as soon as it has seen a used descriptor, so a restore writes again only the used entries whose
 * publication it finds did not happen (PackedQueue.restorePendingUsed).
 */
export const BACKEND_RINGS: readonly RingFormat[] = ['split', 'packed'];

/** A queue's used entries not yet published, as the journal holds them (a split ring's take one slot each). */
function pendingUsedOf(queue: DeviceQueue | null): UsedTriple[] {
  if (queue instanceof PackedQueue) return queue.pendingUsedEntries();
  if (queue instanceof SplitQueue) return queue.pendingUsedEntries().map(([id, len]) => [id, len, 1]);
  return [];
}

/**
 * Give queue `vq` back the used entries the journal holds for it (pendingUsedOf's inverse), to be
 * published by its next flush; returns how many the dead backend had published already (found in
 * a packed ring's slots and passed over, not written again).
 */
function restoreUsedInto(queue: DeviceQueue | null, vq: number, used: readonly UsedTriple[]): number {
  if (queue instanceof PackedQueue) return queue.restorePendingUsed(used);
  if (queue instanceof SplitQueue) {
    if (used.some(([, , slots]) => slots !== 1)) throw new BackendError(BackendErrorCode.BadJournal, `journal entry: a used element of split ring ${vq} spans more than one slot`);
    queue.restorePendingUsed(used.map(([id, len]) => [id, len]));
    return 0;
  }
  throw new BackendError(BackendErrorCode.BadJournal, `journal entry: used elements for queue ${vq}, which is not an enabled ring`);
}

/** Calls that change nothing in the device: answered without a commit. */
const READ_ONLY_CALLS: ReadonlySet<string> = new Set(['describe', 'maxQueueSize', 'queueEnabled', 'queryQp']);

/** The provider's counters as the `providerCounters` op answers them (its maps as entry lists). */
export interface ProviderCounters {
  events: [string, number][];
  dropped: [string, number][];
  internalErrors: number;
}

/** How long a starting backend retries binding an address its dead predecessor's socket still held. */
const BIND_RETRY_MS = 5000;
/** Passes the device loop runs before it yields to the event loop (sockets, timers, calls). */
const PASSES_PER_TURN = 8;

export interface BackendCounters {
  /** Journal entries this backend committed. */
  commits: number;
  /** Bytes of the last entry. */
  entryBytes: number;
  /** Time spent committing (capture, encode, CRC, copy), in milliseconds. */
  commitMs: number;
}

/** How a backend's start went, in milliseconds. */
export interface StartTimings {
  /** Building the device and provider and restoring the journal's entry (0 for a fresh device). */
  restoreMs: number;
  /** Binding the VM's address, and the attempts it took (a dead thread's socket may still hold it). */
  bindMs: number;
  bindAttempts: number;
}

export class DeviceBackend {
  readonly counters: BackendCounters = { commits: 0, entryBytes: 0, commitMs: 0 };
  timings: StartTimings = { restoreMs: 0, bindMs: 0, bindAttempts: 0 };
  /** The device status the last commit held (a change is committed before the mirror shows it). */
  private committedStatus = -1;
  /** QPs this backend moved to ERR at its start: an atomic of theirs was in doubt. */
  readonly inDoubt: number[] = [];
  /**
   * The used entries the journal's entry held unpublished at a restore, and how many of them the
   * dead backend had published after all (found in a packed ring's slots, so not written again).
   */
  readonly restoredUsed = { entries: 0, published: 0 };
  /** The atomic its journal entry was committed before, and how it was settled. */
  atomic: { qpn: number; outcome: IntentOutcome } | null = null;
  /**
   * Tests only: end this thread right after the next atomic's intent is committed, before the
   * atomic runs; or after it ran, before its result is committed.
   */
  crash: 'before-atomic' | 'after-atomic' | 'at-next-commit' | null = null;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private served: Promise<void> = Promise.resolve();
  private failed!: (err: unknown) => void;
  /** Settles when the backend stops: resolves on close(), rejects with what stopped it otherwise. */
  readonly done: Promise<void>;

  private constructor(
    private readonly block: ControlBlock,
    private readonly journal: Journal,
    /** The guest's memory, attached: its region table is shared with the driver's thread. */
    private readonly dm: DeviceMemory,
    readonly device: RdmaDevice,
    readonly verbs: SoftRoce,
    /** Where packets go below the gate: the VM's socket, or the rings to the thread that holds it. */
    private readonly link: Link,
    /** The VM's address when this backend holds its socket (null: the driver's thread does). */
    private readonly address: MovableLink | null,
    private readonly gate: CommitGate,
    private readonly server: CallServer,
    readonly epoch: number,
    private readonly journaled: boolean,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.failed = (err) => (err === null ? resolve() : reject(err));
    });
    this.done.catch(() => {});
  }

  /**
   * Take the device in this thread: `fresh` starts it empty (its journal must be empty), `restore`
   * takes it up from the journal's last entry. Rejects with BackendError (NOT_OWNER, BAD_JOURNAL),
   * StateError or NetError; nothing is left bound or owned then.
   */
  static async start(spec: BackendSpec, mode: 'fresh' | 'restore'): Promise<DeviceBackend> {
    const t0 = performance.now();
    const block = ControlBlock.attach(spec.control);
    const epoch = block.take(threadId);
    let backend: DeviceBackend | null = null;
    let link: Link | null = null;
    try {
      const journal = new Journal(block);
      const journaled = spec.journal ?? true;
      const entry = mode === 'restore' ? journal.latest() : null;
      if (mode === 'fresh' && journal.generation !== 0) throw new BackendError(BackendErrorCode.BadJournal, 'a fresh device needs an empty journal');
      if (mode === 'restore' && entry === null) throw new BackendError(BackendErrorCode.BadJournal, 'the device has no journal entry to come back from (it ran without a journal)');
      const dm = DeviceMemory.attach(spec.memory, spec.layout);
      if (spec.dirtyLog !== undefined) dm.dirtyLog = DirtyLog.attach(spec.dirtyLog.memory, spec.dirtyLog.placement);
      const address = spec.rings === undefined ? new MovableLink(spec.ip, () => UdpLink.open({ ip: spec.ip, port: spec.port, batched: spec.batched }), spec.port) : null;
      const below: Link = address ?? new RingLink(spec.ip, spec.port ?? ROCE_UDP_PORT, spec.rings!);
      link = below;
      let self: DeviceBackend | null = null;
      const gate = new CommitGate(below, () => self?.device.transport.wake.notify());
      const provider = journaled ? { ...spec.provider, beforeAtomic: (intent: AtomicIntent) => self!.commitIntent(intent) } : spec.provider;
      const verbs = new SoftRoce(dm, journaled ? gate : below, provider);
      const device = new RdmaDevice({ verbs, dm, vmIp: spec.ip, queueFactory: ringQueueFactory('wasm', BACKEND_RINGS), deferPublish: true });
      const bells = device.transport.bells;
      const placed = block.doorbells;
      if (placed !== null && (placed.base !== bells.base || placed.numQueues !== bells.numQueues)) {
        throw new BackendError(BackendErrorCode.BadJournal, `the driver rings doorbells at ${placed.base} (${placed.numQueues} queues); this device has them at ${bells.base} (${bells.numQueues})`);
      }
      block.setDoorbells(bells.base, bells.numQueues);
      const server = new CallServer(block, (call) => self!.call(call), (call) => self!.afterCall(call));
      backend = self = new DeviceBackend(block, journal, dm, device, verbs, below, address, gate, server, epoch, journaled);
      const restored = entry === null ? null : backend.restore(entry.payload, spec.memory);
      const t1 = performance.now();
      const bindAttempts = address === null || spec.unbound === true ? 0 : await bindWithRetry(address);
      backend.timings = { restoreMs: t1 - t0, bindMs: performance.now() - t1, bindAttempts };
      for (const qpn of restored?.resume ?? []) verbs.resumeQp(qpn);
      if (restored?.inDoubt) backend.failInDoubt(restored.inDoubt);
      backend.commit();
      gate.release();
      backend.mirrorStatus();
      backend.run();
      // Tell the driver: whatever it waits for on an enabled queue may have happened while no
      // backend ran (a spurious notification is allowed, virtio 1.2 §2.7.7).
      if (entry !== null) for (let vq = 0; vq < bells.numQueues; vq++) if (device.transport.queueEnabled(vq)) bells.calls[vq].notify();
      device.transport.wake.notify();
      return backend;
    } catch (err) {
      if (backend !== null) backend.verbs.close();
      await link?.close().catch(() => {});
      block.release(threadId);
      throw err;
    }
  }

  /** Stop serving and close the socket; the device stays in the journal (a backend can take it up again). */
  async close(): Promise<void> {
    await this.shutdown(null);
  }

  /** What the commit gate did: packets released and dropped. */
  get gateCounters(): Readonly<CommitGate['counters']> {
    return this.gate.counters;
  }

  /** Commit the device's state now (the device loop does at the end of every turn that publishes or sends). */
  commit(intent: AtomicIntent | null = null): void {
    if (this.crash === 'at-next-commit') process.exit(70);
    if (!this.block.owns(threadId)) throw new BackendError(BackendErrorCode.NotOwner, `thread ${threadId} no longer owns the device`);
    if (!this.journaled) return;
    const started = performance.now();
    const { device } = this;
    const unpublished: JournalEntry['unpublished'] = [];
    for (const vq of device.datapath.unpublished()) {
      const used = pendingUsedOf(device.transport.queue(vq));
      if (used.length > 0) unpublished.push({ vq, used });
    }
    const chunks = journalEntryChunks({ deviceState: encodeDeviceState(captureDevice(device)), unpublished, intent });
    this.journal.commit(...chunks);
    this.committedStatus = this.device.transport.status.status;
    this.counters.commits++;
    this.counters.entryBytes = chunks.reduce((n, c) => n + c.length, 0);
    this.counters.commitMs += performance.now() - started;
  }

  /**
   * Rebuild the device from a journal entry; returns the QPs to resume once the address is bound,
   * and the QP whose atomic is in doubt, if the entry was committed right before one that cannot be
   * settled (atomic-intent.ts).
   */
  private restore(payload: Uint8Array, memory: WebAssembly.Memory): { resume: number[]; inDoubt: AtomicIntent | null } {
    const entry = decodeJournalEntry(payload);
    const { device } = this;
    let state = entry.deviceState;
    let inDoubt: AtomicIntent | null = null;
    if (entry.intent !== null) {
      const current = readTarget(memory, entry.intent);
      let outcome: IntentOutcome = current === null ? 'in-doubt' : settleIntent(current, entry.intent);
      if (outcome === 'ran') {
        const forward = stateWithAtomicDone(state, entry.intent);
        if (forward === null) outcome = 'in-doubt';
        else state = forward;
      }
      this.atomic = { qpn: entry.intent.qpn, outcome };
      if (outcome === 'in-doubt') inDoubt = entry.intent;
    }
    const provider = decodeSoftRoceState(decodeDeviceState(state).provider);
    device.restoreState(state);
    for (const { vq, used } of entry.unpublished) {
      const queue = vq < device.transport.numQueues ? device.transport.queue(vq) : null;
      this.restoredUsed.published += restoreUsedInto(queue, vq, used);
      this.restoredUsed.entries += used.length;
      device.datapath.markUnpublished(vq);
    }
    return { resume: provider.qps.filter((q) => q.suspension === null && canSuspend(q.state)).map((q) => q.qpn), inDoubt };
  }

  /**
   * The journal's last entry was committed right before QP `intent.qpn` executed an atomic, and its
   * target word holds neither the value before nor the one after: whether the atomic ran is unknown,
   * and executing it again (or answering it as not executed) could be wrong. The QP goes to ERR —
   * its work flushed, a QP fatal event raised — a clean failure the peer sees as its retries running
   * out, instead of a guess.
   */
  private failInDoubt(intent: AtomicIntent): void {
    const qp = this.device.core.qps.get(intent.qpn);
    if (qp === undefined) return;
    this.inDoubt.push(intent.qpn);
    this.device.datapath.moveToErr(qp);
    this.device.events.raise(EventType.QpFatal, intent.qpn);
  }

  /**
   * A responder QP is about to execute an atomic (SoftRoceOptions.beforeAtomic): commit first,
   * with the intent, so a backend restored from this entry can settle it. If the commit fails the
   * atomic does not run, and the backend stops.
   */
  private commitIntent(intent: AtomicIntent): void {
    try {
      this.commit(intent);
    } catch (err) {
      this.stop(err);
      throw err;
    }
    if (this.crash === 'before-atomic') process.exit(70);
    if (this.crash === 'after-atomic') this.crash = 'at-next-commit';
  }

  private call(c: Call): unknown {
    const t = this.device.transport;
    const a = c.args;
    switch (c.method) {
      case 'describe': {
        const m = t.map;
        return { deviceFeatures: t.deviceFeatures, maxCq: m.maxCq, maxQp: m.maxQp, maxSrq: m.maxSrq, eventq: m.eventq, bellsBase: t.bells.base } satisfies DeviceDescription;
      }
      case 'setDriverFeatures':
        if (typeof a[0] !== 'bigint') throw new BackendError(BackendErrorCode.BadCall, 'features are a bigint');
        return t.setDriverFeatures(a[0]);
      case 'writeStatus':
        return t.writeStatus(num(a[0]));
      case 'readConfig':
        return t.readConfig(num(a[0]), num(a[1]));
      case 'maxQueueSize':
        return t.maxQueueSize(num(a[0]));
      case 'configureQueue': {
        const cfg = a[1] as Record<string, unknown> | null;
        if (typeof cfg !== 'object' || cfg === null) throw new BackendError(BackendErrorCode.BadCall, 'a queue configuration is an object');
        return t.configureQueue(num(a[0]), { size: num(cfg.size), descGpa: num(cfg.descGpa), driverGpa: num(cfg.driverGpa), deviceGpa: num(cfg.deviceGpa) });
      }
      case 'enableQueue':
        return t.enableQueue(num(a[0]));
      case 'resetQueue':
        return t.resetQueue(num(a[0]));
      case 'queueEnabled':
        return t.queueEnabled(num(a[0]));
      // What a VMM needs of the device to migrate it (src/migration/source.ts, destination.ts).
      case 'queryQp':
        return this.verbs.queryQp(num(a[0]));
      // Hotplug (R2): the driver's thread reserved the backing; the table changes here, between passes.
      case 'plugRegion':
        return this.plugRegion(a[0]);
      case 'unplugRegion':
        return this.unplugRegion(num(a[0]));
      case 'suspendAll':
        return this.suspendAll(suspendPolicy(a[0]));
      case 'resumeAll': {
        const qpns = a[0];
        if (!Array.isArray(qpns) || qpns.length > this.device.core.qps.size) throw new BackendError(BackendErrorCode.BadCall, "a list of the device's QPNs");
        for (const qpn of qpns) this.verbs.resumeQp(num(qpn));
        return null;
      }
      case 'flush':
        // Publish what the last turn left, so the entry committed after this call (the device's
        // state as the driver may take it, DurableDevice.saveState) holds nothing unpublished.
        this.endTurn();
        return null;
      default:
        throw new BackendError(BackendErrorCode.BadCall, `no call ${JSON.stringify(c.method).slice(0, 40)}`);
    }
  }

  /**
   * Put a region the driver's thread reserved (DeviceMemory.reserveRegion) into the shared region
   * table and re-map the all-memory MRs (R2). Between passes, so no access of this thread straddles
   * the change. Idempotent: a call its predecessor died in is made again.
   */
  private plugRegion(r: unknown): null {
    const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
    const region: Region = { gpa: num(o.gpa) as Gpa, size: num(o.size), hostOffset: num(o.hostOffset) };
    const { ramBase, ramBytes } = this.dm.layout;
    if (region.hostOffset % 4096 !== 0 || region.hostOffset < ramBase || region.size <= 0 || region.hostOffset + region.size > ramBase + ramBytes) {
      throw new BackendError(BackendErrorCode.BadCall, `a region's backing must lie in the RAM window [${ramBase}, ${ramBase + ramBytes})`);
    }
    const table = this.dm.guest.regions;
    const present = table.list().find((x) => x.gpa === region.gpa);
    if (present === undefined) table.insert(region);
    else if (present.size !== region.size || present.hostOffset !== region.hostOffset) throw new BackendError(BackendErrorCode.BadCall, `another region is plugged at ${region.gpa}`);
    this.device.memoryChanged();
    return null;
  }

  /** Take the region at `gpa` out of the table and re-map the all-memory MRs; the driver's thread then frees its backing. */
  private unplugRegion(gpa: number): null {
    const table = this.dm.guest.regions;
    if (table.list().some((x) => x.gpa === gpa)) table.remove(gpa as Gpa);
    this.device.memoryChanged();
    return null;
  }

  /** The provider's counters, for a host's metrics (a port op: asked from the event loop, not a vCPU call). */
  providerCounters(): ProviderCounters {
    const c = this.verbs.counters;
    return { events: [...c.events], dropped: [...c.dropped], internalErrors: c.internalErrors };
  }

  /** The keys of every MR the device holds, [lkey, rkey]. */
  mrKeys(): [number, number][] {
    return [...this.device.core.mrs.values()].map((mr) => [mr.lkey, mr.rkey]);
  }

  /** Suspend every QP that can be, ascending; if one fails, resume those suspended and throw. */
  private suspendAll(policy: 'rnr-nak' | 'drop'): number[] {
    const done: number[] = [];
    try {
      for (const qpn of [...this.device.core.qps.keys()].sort((x, y) => x - y)) {
        if (!canSuspend(this.verbs.queryQp(qpn).qpState)) continue;
        this.verbs.suspendQp(qpn, policy);
        done.push(qpn);
      }
    } catch (err) {
      for (const qpn of done) this.verbs.resumeQp(qpn);
      throw err;
    }
    return done;
  }

  /**
   * After each configuration call: what it changed is committed before the driver hears back. A
   * call that only reads changes nothing to commit (what the loop did is committed at its turns).
   */
  private afterCall(call: Call | null): void {
    if (call !== null && READ_ONLY_CALLS.has(call.method)) return;
    this.commit();
    this.device.publish();
    this.gate.release();
    this.mirrorStatus();
  }

  /**
   * R7: give up the VM's address (its socket closes once the sends already made have left), or
   * bind it again. Only for a backend that holds the socket itself.
   */
  async releaseAddress(): Promise<void> {
    await this.ownAddress().release();
  }

  async bindAddress(): Promise<void> {
    await this.ownAddress().bind();
  }

  private ownAddress(): MovableLink {
    if (this.address === null) throw new BackendError(BackendErrorCode.BadCall, "the device's socket is held by the driver's thread, not its backend");
    return this.address;
  }

  private mirrorStatus(): void {
    this.block.store(W.status, this.device.transport.status.status);
  }

  private run(): void {
    this.served = this.server.serve().catch((err) => this.stop(err));
    this.loop = this.deviceLoop().catch((err) => this.stop(err));
  }

  /**
   * Service the device whenever its wake doorbell rings (kicks, provider completions, packets
   * held by the gate). Each turn runs passes, then makes what they and the provider did visible
   * in one step: commit, publish the used entries, release the held packets.
   */
  private async deviceLoop(): Promise<void> {
    const wake = this.device.transport.wake;
    while (!this.stopped) {
      const seen = wake.value();
      let more = false;
      for (let i = 0; i < PASSES_PER_TURN && !this.stopped; i++) {
        more = this.device.process();
        if (!more) break;
      }
      this.endTurn();
      if (more) await new Promise((resolve) => setImmediate(resolve));
      else await wake.waitAsync(seen, 1000);
    }
  }

  private endTurn(): void {
    if (this.stopped) return;
    // What the guest or a peer could see next: used entries, packets, a new device status (NEEDS_RESET).
    const status = this.device.transport.status.status;
    if (this.device.datapath.unpublished().size > 0 || this.gate.holding || status !== this.committedStatus) this.commit();
    this.device.publish();
    this.gate.release();
    this.mirrorStatus();
  }

  private stop(err: unknown): void {
    void this.shutdown(err);
  }

  private async shutdown(err: unknown): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // A backend that failed sends nothing more: the journal, not this thread, has the device now.
    if (err !== null) this.gate.halt();
    this.server.stop();
    this.device.transport.wake.notify();
    await Promise.allSettled([this.loop, this.served]);
    // One that stops lets the ACKs it coalesced leave first (src/nic/soft/qp.ts sends them a turn
    // later), committed like everything else.
    if (err === null) {
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
      try {
        if (this.gate.holding) this.commit();
        this.gate.release();
      } catch {
        // Not ours any more: nothing leaves.
      }
    }
    this.verbs.close();
    await (this.journaled ? this.gate : this.link).close().catch(() => {});
    if (!(err instanceof BackendError && err.code === BackendErrorCode.NotOwner)) this.block.release(threadId);
    this.failed(err);
  }
}

function suspendPolicy(v: unknown): 'rnr-nak' | 'drop' {
  if (v !== 'rnr-nak' && v !== 'drop') throw new BackendError(BackendErrorCode.BadCall, 'a suspend policy is rnr-nak or drop');
  return v;
}

function num(v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new BackendError(BackendErrorCode.BadCall, `expected a number, got ${typeof v}`);
  return v;
}

/** Bind, retrying while the address is in use; returns the attempts it took. */
async function bindWithRetry(address: MovableLink): Promise<number> {
  const deadline = Date.now() + BIND_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await address.bind();
      return attempt;
    } catch (err) {
      if (!(err instanceof NetError && err.code === NetErrorCode.AddressInUse) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
