// Test doubles for the coordinator's tests that do not need a whole VM: real guest RAM (a
// DeviceMemory) with a simple page log, and QPs that only record suspend and resume. Not a test file.
import { DeviceMemory } from '../../src/memory/device-memory.js';
import type { DestinationVm, RestoreParts } from '../../src/migration/destination.js';
import type { PageLog } from '../../src/migration/precopy.js';
import type { SourceVm } from '../../src/migration/source.js';
import { firstCompletions } from '../../src/migration/first-completion.js';
import type { QpInstant } from '../../src/migration/messages.js';
import { resumeEach, suspendEach } from '../../src/migration/qp-steps.js';
import { QpState } from '../../src/nic/qp-state.js';
import type { QpAttributes, WorkCompletion } from '../../src/nic/verbs.js';

export class SetLog implements PageLog {
  private on = false;
  private readonly pages = new Set<number>();
  get enabled(): boolean {
    return this.on;
  }
  start(): void {
    this.on = true;
  }
  stop(): void {
    this.on = false;
    this.pages.clear();
  }
  mark(gpa: number, len: number): void {
    if (!this.on) return;
    for (let p = Math.floor(gpa / 4096); p <= Math.floor((gpa + len - 1) / 4096); p++) this.pages.add(p);
  }
  harvest(): Uint32Array {
    const out = Uint32Array.from(this.pages).sort();
    this.pages.clear();
    return out;
  }
}

export class FakeSourceVm implements SourceVm {
  readonly dm: DeviceMemory;
  readonly dirtyLog = new SetLog();
  readonly cpuLog = new SetLog();
  readonly qpStates = new Map<number, QpState>();
  readonly events: string[] = [];
  readonly device;
  readonly verbs;
  addressHeld = true;
  closed = false;

  constructor(readonly ip: string, regions: { gpa: number; size: number }[], ramBytes: number, qpns: number[] = []) {
    this.dm = DeviceMemory.create({ ramBytes, arenaBytes: 1 << 20 });
    for (const r of regions) this.dm.addRegion(r.gpa, r.size);
    for (const q of qpns) this.qpStates.set(q, QpState.Rts);
    const states = this.qpStates;
    const events = this.events;
    this.device = { saveState: () => Uint8Array.of(0xde, 0x51, states.size), core: { qps: states } };
    this.verbs = {
      queryQp: (qpn: number) => ({ qpState: states.get(qpn) }) as QpAttributes,
      suspendQp: (qpn: number) => {
        states.set(qpn, QpState.Suspended);
        events.push(`suspend ${qpn}`);
      },
      resumeQp: (qpn: number) => {
        if (states.get(qpn) !== QpState.Suspended) throw new Error(`QP ${qpn} is not suspended`);
        states.set(qpn, QpState.Rts);
        events.push(`resume ${qpn}`);
      },
    };
  }

  /** The guest (its vCPU) writes: RAM changes and the CPU log hears of it. */
  guestWrite(gpa: number, bytes: Uint8Array): void {
    this.dm.guest.bytes.set(bytes, this.dm.guest.translate(gpa as never, bytes.length));
    this.cpuLog.mark(gpa, bytes.length);
  }
  /** The device writes (a packet's payload): the device log hears of it. */
  deviceWrite(gpa: number, bytes: Uint8Array): void {
    this.dm.guest.bytes.set(bytes, this.dm.guest.translate(gpa as never, bytes.length));
    this.dirtyLog.mark(gpa, bytes.length);
  }

  suspendAll(policy: 'rnr-nak' | 'drop'): QpInstant[] {
    return suspendEach(this.verbs, this.qpStates.keys(), policy);
  }
  resumeAll(qpns: readonly number[]): QpInstant[] {
    return resumeEach(this.verbs, qpns);
  }

  saveGuestState(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ fake: true }));
  }
  async releaseAddress(): Promise<void> {
    this.addressHeld = false;
    this.events.push('release');
  }
  async bindAddress(): Promise<void> {
    this.addressHeld = true;
    this.events.push('rebind');
  }
  async close(): Promise<void> {
    this.closed = true;
  }

  /** Every region's bytes, in order. */
  ram(): Uint8Array {
    return snapshotRam(this.dm);
  }
}

export function snapshotRam(dm: DeviceMemory): Uint8Array {
  const parts = dm.guest.regions.list().map((r) => dm.guest.slice(r.gpa, r.size).slice());
  return Buffer.concat(parts);
}

/** What the destination builds in these tests: the RAM and states it was given, and fake QPs. */
export class FakeDestinationVm implements DestinationVm {
  readonly resumed: number[] = [];
  closed = false;
  readonly verbs;
  constructor(readonly parts: RestoreParts, completions: () => WorkCompletion[] = () => []) {
    this.verbs = {
      resumeQp: (qpn: number) => {
        this.resumed.push(qpn);
      },
      pollCq: (_cq: number, _max: number) => completions(),
    };
  }
  resumeAll(qpns: readonly number[]): QpInstant[] {
    return resumeEach(this.verbs, qpns);
  }
  firstCompletions(qpns: readonly number[], watchMs: number): Promise<Map<number, number>> {
    return firstCompletions(this.verbs, qpns, watchMs);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
