// A VM whose device is a durable backend (backend-pool.ts): guest RAM and the guest's driver on
// this thread, the device in a pool worker, and what a VMM needs to migrate it — the two dirty
// logs (the device's, marked from its worker, and the guest's own), the device's state taken from
// its journal, its QPs suspended and resumed, its address released and bound (R7). It offers what
// src/migration asks of a source and of a destination, with the guest RAM layout and guest state
// of src/host/vm.ts, so a VM migrates between the two sorts in either direction: the device state
// (R9) is one format whichever thread ran the device.
//
// On the destination the device is opened from the migrated state: its journal starts with it and
// a backend takes it up as after a crash, its QPs still SUSPENDED until the coordinator resumes
// them. A state preview is vetted by restoring it in this thread over scratch memory (vet()): the
// same restore a backend runs, without starting one. Both sorts offer split and packed rings
// (BACKEND_RINGS, a Vm's default), so a VM moves between them on either.
import { RdmaGuest, type OpenOptions } from '../guest/rdma/device.js';
import { Arena } from '../memory/arena.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Region } from '../memory/region-table.js';
import type { DestinationVm } from '../migration/destination.js';
import type { DirtyLog } from '../migration/dirty-log.js';
import type { QpInstant } from '../migration/messages.js';
import { instant } from '../migration/report.js';
import type { SourceVm } from '../migration/source.js';
import type { QpAttributes } from '../nic/verbs.js';
import { DEFAULT_DRIVER_BYTES, DRIVER_AREA_GPA, GuestVm, decodeVmGuestState } from '../host/guest-vm.js';
import { Vm } from '../host/vm.js';
import type { BackendPool, DurableDevice, OpenDeviceOptions } from './backend-pool.js';
import { BACKEND_RINGS } from './device-backend.js';

export interface DurableVmOptions extends Omit<OpenDeviceOptions, 'restore' | 'bindAddress'> {
  /** Guest RAM kept for rings and command buffers; the rest is for data buffers. Default 4 MiB. */
  driverBytes?: number;
  open?: OpenOptions;
}

export class DurableVm extends GuestVm implements SourceVm, DestinationVm {
  /** A QP's attributes, asked of the backend (a synchronous call). */
  readonly verbs: { queryQp(qpn: number): QpAttributes };
  readonly device: { saveState(): Uint8Array };
  private closed = false;

  private constructor(
    /** The device in its pool. */
    readonly durable: DurableDevice,
    guest: RdmaGuest,
    data: Arena,
    cpuMemory: GuestMemory,
  ) {
    super(guest, data, cpuMemory);
    const d = durable;
    this.verbs = { queryQp: (qpn) => d.queryQp(qpn) };
    this.device = { saveState: () => d.saveState() };
  }

  /** A new VM: RAM of `ramBytes` (default 32 MiB), its device started in `pool`, the guest driver opened on it. */
  static async open(pool: BackendPool, options: DurableVmOptions): Promise<DurableVm> {
    const driverBytes = options.driverBytes ?? DEFAULT_DRIVER_BYTES;
    const durable = await pool.open(options);
    try {
      const ramBytes = options.regionBytes ?? durable.dm.layout.ramBytes;
      if (DRIVER_AREA_GPA + driverBytes >= ramBytes) throw new RangeError(`ramBytes ${ramBytes} leaves no room for data past the driver area`);
      const cpuMemory = durable.dm.guest.withLog(durable.logs.cpu);
      const guest = RdmaGuest.open(durable.transport, cpuMemory, new Arena(DRIVER_AREA_GPA, driverBytes), options.open);
      const dataBase = DRIVER_AREA_GPA + driverBytes;
      return new DurableVm(durable, guest, new Arena(dataBase, ramBytes - dataBase), cpuMemory);
    } catch (err) {
      await durable.close();
      throw err;
    }
  }

  /**
   * A migrated VM on this host (the coordinator's restoreVm): its device opened in `pool` from the
   * saved state over `dm` (RAM already copied), the guest driver and data allocator from theirs,
   * the address bound here. Its QPs come back SUSPENDED. Throws what a refused state throws;
   * nothing is left running or bound then.
   */
  static async restore(pool: BackendPool, parts: { ip: string; dm: DeviceMemory; deviceState: Uint8Array; guestState: Uint8Array }, options: Omit<DurableVmOptions, 'ip' | 'ramBytes' | 'driverBytes' | 'open'> = {}): Promise<DurableVm> {
    const saved = decodeVmGuestState(parts.guestState);
    const data = Arena.fromState(saved.data);
    const durable = await pool.open({ ...options, ip: parts.ip, restore: { dm: parts.dm, deviceState: parts.deviceState } });
    try {
      const cpuMemory = durable.dm.guest.withLog(durable.logs.cpu);
      const guest = RdmaGuest.restore(durable.transport, cpuMemory, saved.driver);
      return new DurableVm(durable, guest, data, cpuMemory);
    } catch (err) {
      await durable.close();
      throw err;
    }
  }

  /**
   * Vet a state preview (the coordinator's vetVm): restore it over `scratch` in this thread, on a
   * device offering what a backend's offers, unbound, and throw it away. Throws what restore() would.
   */
  static vet(parts: { ip: string; scratch: DeviceMemory; deviceState: Uint8Array; guestState: Uint8Array }, options: Pick<DurableVmOptions, 'provider'> = {}): Promise<void> {
    return Vm.vet(parts, { provider: options.provider, rings: BACKEND_RINGS });
  }

  /** One call to the backend for all QPs (each call is a round trip to another thread and a commit): one instant for all. */
  suspendAll(policy: 'rnr-nak' | 'drop'): QpInstant[] {
    const qpns = this.durable.suspendAll(policy);
    const at = instant();
    return qpns.map((qpn) => ({ qpn, at }));
  }

  resumeAll(qpns: readonly number[]): QpInstant[] {
    this.durable.resumeAll(qpns);
    const at = instant();
    return qpns.map((qpn) => ({ qpn, at }));
  }

  /** The provider's counters, fetched from the backend's worker. */
  providerCounters(): ReturnType<DurableDevice['providerCounters']> {
    return this.durable.providerCounters();
  }

  /** The keys of every MR the device holds, [lkey, rkey], once a backend answers. */
  async mrKeys(): Promise<[number, number][]> {
    await this.durable.ready();
    return this.durable.mrKeys();
  }

  /** The QP blackouts' ends, watched in the backend where the provider's completions are taken. */
  firstCompletions(qpns: readonly number[], watchMs: number): Promise<Map<number, number>> {
    return this.durable.firstCompletions(qpns, watchMs);
  }

  get ip(): string {
    return this.durable.ip;
  }

  get dm(): DeviceMemory {
    return this.durable.dm;
  }

  /** Writes of the device and its provider to guest RAM (marked in the device's worker). */
  get dirtyLog(): DirtyLog {
    return this.durable.logs.device;
  }

  /** Writes of the guest (this thread) to guest RAM. */
  get cpuLog(): DirtyLog {
    return this.durable.logs.cpu;
  }

  releaseAddress(): Promise<void> {
    return this.durable.releaseAddress();
  }

  /** Wait until a backend answers (DurableDevice.ready): the coordinator's synchronous steps come next. */
  settle(): Promise<void> {
    return this.durable.ready();
  }

  /** Hotplug (R2): plug guest RAM at `start`; the device's all-memory MRs reach it. */
  plugRegion(start: number, size: number): Promise<Region> {
    return this.durable.plugRegion(start, size);
  }

  /** Unplug the region at `start`: the all-memory MRs' pages there become the throw-away page. */
  unplugRegion(start: number): Promise<void> {
    return this.durable.unplugRegion(start);
  }

  bindAddress(): Promise<void> {
    return this.durable.bindAddress();
  }

  /** Stop the device's backend and release its address. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.durable.close();
  }
}
