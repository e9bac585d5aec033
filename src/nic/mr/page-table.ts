// MR page tables in the device arena (layout in assembly/mr.ts): the translation the verbs layer
// hangs its keys, PDs and MR objects on. A table's header offset is its handle and never changes
// over its life, so a key that names it keeps working across hotplug (R2) and reregistration;
// the entry array and the throw-away pages may move, with the datapath quiesced as for any
// region change.
//
//   physical (R1):   iova range separate from the memory: a list of guest-physical pages
//   all-memory (R2): iova == gpa over [0, highest region end seen) or a configured size; pages
//                    with no guest memory read as zeros and swallow writes, nothing faults;
//                    rebuild() follows hotplug
//   on demand (R3):  pages start absent; an access faults (ST_PAGE_FAULT) until markPresent()
import {
  MR_ACCESS_ALL, MR_HEADER_BYTES, MR_H_ACCESS, MR_H_ENTRIES, MR_H_FLAGS, MR_H_GENERATION, MR_H_IOVA, MR_H_KIND,
  MR_H_LENGTH, MR_H_MAGIC, MR_H_PAGE_COUNT, MR_H_PAGE_SHIFT, MR_H_REGION_TABLE, MR_H_SINK_PAGE, MR_H_ZERO_PAGE,
  MR_KIND_ALL_MEMORY, MR_KIND_PHYSICAL, MR_LOCAL_WRITE, MR_ON_DEMAND, MR_PTE_BYTES, MR_PTE_PRESENT, MR_REMOTE_ATOMIC,
  MR_REMOTE_WRITE, MR_TABLE_MAGIC, MR_TABLE_ON_DEMAND,
} from '../../../assembly/mr-abi.js';
import type { DeviceMemory } from '../../memory/device-memory.js';
import { MemoryError, MemoryErrorCode } from '../../memory/errors.js';
import { type Gpa, gpaHex } from '../../memory/gpa.js';
import { MrError, MrErrorCode } from './errors.js';
import { type PageTableState, validateState } from './page-table-state.js';

export type { PageTableState } from './page-table-state.js';

export type PageShift = 12 | 21;
export type PageTableKind = 'physical' | 'all-memory';

/** A registration for guest userspace (R1): what REG_PHYS_MR carries. */
export interface PhysicalSpec {
  readonly iova: number;
  readonly length: number;
  /** MR_* rights of assembly/mr-abi.ts; MR_ON_DEMAND here means onDemand. */
  readonly access: number;
  /** Page size of `pages`; 4 KiB by default. */
  readonly pageShift?: PageShift;
  /** Page i backs iova [alignDown(iova) + i * pageBytes, +pageBytes); page-aligned GPAs. */
  readonly pages: readonly Gpa[];
  /** On-demand paging: pages start absent and fault in. */
  readonly onDemand?: boolean;
}

/** Options of a registration over all guest memory (R2). */
export interface AllMemoryOptions {
  readonly pageShift?: PageShift;
  /** Cover [0, sizeBytes) instead of [0, end of the highest region). */
  readonly sizeBytes?: number | null;
  readonly onDemand?: boolean;
}

interface Mapping {
  kind: PageTableKind;
  iova: number;
  length: number;
  pageShift: PageShift;
  access: number;
  onDemand: boolean;
  sizeBytes: number | null;
  /** GPA of page i (all-memory: i << pageShift). */
  pageGpa: (i: number) => number;
  present: (i: number) => boolean;
  pageCount: number;
}

export class PageTable {
  /** Offset of the header in the shared memory: the handle mrTranslate takes. */
  readonly offset: number;
  private readonly view: DataView;
  private readonly entries64: BigUint64Array;
  /** Bumped by every change of the translation or a present bit: toState() is kept until then. */
  private version = 0;
  private saved: { version: number; state: PageTableState } | null = null;
  private mapping!: Mapping;
  private entriesOff = 0;
  private entriesCap = 0;
  private zeroOff = 0;
  private sinkOff = 0;
  private throwAwayBytes = 0;
  private disposed = false;

  private constructor(private readonly dm: DeviceMemory, mapping: Mapping) {
    this.view = new DataView(dm.memory.buffer);
    this.entries64 = new BigUint64Array(dm.memory.buffer);
    this.offset = arenaAlloc(dm, MR_HEADER_BYTES, 64);
    try {
      this.install(mapping, 0);
    } catch (err) {
      dm.arena.release(this.offset);
      throw err;
    }
  }

  /** Register a list of guest-physical pages under an iova range (R1). */
  static physical(dm: DeviceMemory, spec: PhysicalSpec): PageTable {
    return new PageTable(dm, physicalMapping(dm, spec));
  }

  /** Register all guest memory, iova == gpa (R2). */
  static allMemory(dm: DeviceMemory, access: number, options: AllMemoryOptions = {}): PageTable {
    return new PageTable(dm, allMemoryMapping(dm, access, options, null));
  }

  /** Rebuild a table from a saved state (untrusted: every field is checked). */
  static fromState(dm: DeviceMemory, input: unknown): PageTable {
    const state = validateState(input);
    const absent = new Set(state.absent);
    const base = { access: state.access, pageShift: state.pageShift, onDemand: state.onDemand };
    const mapping =
      state.kind === 'physical'
        ? physicalMapping(dm, { ...base, iova: state.iova, length: state.length, pages: state.pages as Gpa[] })
        : allMemoryMapping(dm, state.access, { ...base, sizeBytes: state.sizeBytes }, null);
    for (const i of absent) {
      if (i >= mapping.pageCount) throw new MrError(MrErrorCode.BadState, `absent page ${i} is outside the table's ${mapping.pageCount} pages`);
    }
    // Most tables have every page present: no set lookup per page then.
    mapping.present = absent.size === 0 ? () => true : (i) => !absent.has(i);
    // An on-demand table was built with every page absent, so its present ones are checked now.
    if (state.kind === 'physical' && state.onDemand) checkGuestMemory(dm, mapping);
    return new PageTable(dm, mapping);
  }

  get kind(): PageTableKind {
    return this.mapping.kind;
  }
  get iova(): number {
    return this.mapping.iova;
  }
  get length(): number {
    return this.mapping.length;
  }
  get pageShift(): PageShift {
    return this.mapping.pageShift;
  }
  get pageCount(): number {
    return this.mapping.pageCount;
  }
  get access(): number {
    return this.mapping.access;
  }
  get onDemand(): boolean {
    return this.mapping.onDemand;
  }
  get generation(): number {
    return this.view.getUint32(this.offset + MR_H_GENERATION, true);
  }
  /** The throw-away pages of an all-memory table (0 for physical ones), for tests and audits. */
  get zeroPageOff(): number {
    return this.zeroOff;
  }
  get sinkPageOff(): number {
    return this.sinkOff;
  }

  /** Guest-physical address of page `index`. */
  pageGpa(index: number): Gpa {
    const entry = this.readEntry(index);
    return (entry - (entry % 2 ** this.mapping.pageShift)) as Gpa;
  }

  isPresent(index: number): boolean {
    return this.readEntry(index) % 2 === MR_PTE_PRESENT;
  }

  /** Index of the page holding `iova` (which must be inside the MR). */
  pageIndex(iova: number): number {
    const m = this.live();
    if (!Number.isSafeInteger(iova) || iova < m.iova || iova >= m.iova + m.length) {
      throw new MrError(MrErrorCode.BadPage, `iova 0x${iova.toString(16)} is outside the MR`);
    }
    return Math.floor((iova - alignDown(m.iova, 2 ** m.pageShift)) / 2 ** m.pageShift);
  }

  /**
   * Follow the guest's regions after dm.addRegion / dm.removeRegion, keeping the handle (and so
   * the keys). An all-memory table grows with the highest region and never shrinks: an unplugged
   * range at the top becomes a hole (zero page / sink page), so a peer holding the key sees
   * the same extent before and after the unplug, as R2 asks. Pages still covered keep their
   * present bits. A physical table resolves its pages through the region table on
   * every access, so it already reaches re-plugged memory: its rebuild keeps every page and bit
   * and only bumps the generation, telling holders of cached translations to drop them.
   */
  rebuild(): void {
    const m = this.live();
    if (m.kind === 'all-memory') {
      this.replace(allMemoryMapping(this.dm, m.access, m, this.snapshotPresent(), m.length));
      return;
    }
    const gpas = Array.from({ length: m.pageCount }, (_, i) => this.pageGpa(i));
    this.replace({ ...m, pageGpa: (i) => gpas[i], present: this.snapshotPresent() });
  }

  /**
   * Change the translation in place, keeping the handle: a new page list for a physical table
   * (REREG_PHYS_MR), new rights or size for an all-memory one.
   */
  reregister(spec: PhysicalSpec | ({ readonly access: number } & AllMemoryOptions)): void {
    const m = this.live();
    if (m.kind === 'physical') {
      if (!('pages' in spec)) throw new MrError(MrErrorCode.WrongKind, 'a physical table is reregistered with a page list');
      this.replace(physicalMapping(this.dm, spec));
    } else {
      if ('pages' in spec) throw new MrError(MrErrorCode.WrongKind, 'an all-memory table takes no page list');
      const options = { pageShift: spec.pageShift ?? m.pageShift, sizeBytes: spec.sizeBytes === undefined ? m.sizeBytes : spec.sizeBytes, onDemand: spec.onDemand ?? m.onDemand };
      this.replace(allMemoryMapping(this.dm, spec.access, options, null));
    }
  }

  /**
   * ODP: page `index` is resident (again), optionally at a new guest-physical address (a
   * physical MR's page that moved). One 64-bit atomic store: readers see old or new, never half.
   */
  markPresent(index: number, at?: Gpa): void {
    const m = this.live();
    this.checkIndex(index);
    const pageBytes = 2 ** m.pageShift;
    const address = at ?? this.pageGpa(index);
    if (m.kind === 'all-memory' && address !== index * pageBytes) {
      throw new MrError(MrErrorCode.WrongKind, 'an all-memory page is always at its own guest-physical address');
    }
    checkPageAddress(address, pageBytes);
    if (m.kind === 'physical') checkPageInGuest(this.dm, address, pageBytes, index);
    Atomics.store(this.entries64, this.entryIndex(index), BigInt(address) | BigInt(MR_PTE_PRESENT));
    this.version++;
  }

  /** ODP: page `index` moved or was reclaimed; the next access to it faults. */
  invalidate(index: number): void {
    this.live();
    this.checkIndex(index);
    Atomics.and(this.entries64, this.entryIndex(index), ~BigInt(MR_PTE_PRESENT));
    this.version++;
  }

  /**
   * The table as plain data (migration, a durable backend's journal). Kept while the table does
   * not change, so a state taken at every commit walks its pages once: the result is shared and
   * must not be modified.
   */
  toState(): PageTableState {
    if (this.saved !== null && this.saved.version === this.version && !this.disposed) return this.saved.state;
    const state = this.walkState();
    this.saved = { version: this.version, state };
    return state;
  }

  private walkState(): PageTableState {
    const m = this.live();
    const absent: number[] = [];
    // The present bits straight from the entries' low words (the migration's save walks every
    // page of an all-memory table; one bounds-checked read per page costs it milliseconds).
    const low = new Uint32Array(this.dm.memory.buffer, this.entriesOff, m.pageCount * 2);
    for (let i = 0; i < m.pageCount; i++) if ((low[2 * i] & MR_PTE_PRESENT) === 0) absent.push(i);
    const common = { pageShift: m.pageShift, access: m.access, onDemand: m.onDemand, absent };
    if (m.kind === 'all-memory') return { kind: 'all-memory', sizeBytes: m.sizeBytes, ...common };
    const pages: number[] = [];
    for (let i = 0; i < m.pageCount; i++) pages.push(this.pageGpa(i));
    return { kind: 'physical', iova: m.iova, length: m.length, pages, ...common };
  }

  /** Free the table's arena blocks; its handle stops translating at once (ST_BAD_KEY). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.view.setUint32(this.offset + MR_H_MAGIC, 0, true);
    this.dm.arena.release(this.entriesOff);
    if (this.zeroOff !== 0) this.dm.arena.release(this.zeroOff);
    if (this.sinkOff !== 0) this.dm.arena.release(this.sinkOff);
    this.dm.arena.release(this.offset);
  }

  private live(): Mapping {
    if (this.disposed) throw new MrError(MrErrorCode.Disposed, 'page table was disposed');
    return this.mapping;
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.mapping.pageCount) {
      throw new MrError(MrErrorCode.BadPage, `page ${index} is outside the table's ${this.mapping.pageCount} pages`);
    }
  }

  private entryIndex(index: number): number {
    return this.entriesOff / MR_PTE_BYTES + index;
  }

  private readEntry(index: number): number {
    this.live();
    this.checkIndex(index);
    const e = this.entriesOff + index * MR_PTE_BYTES;
    return this.view.getUint32(e, true) + this.view.getUint32(e + 4, true) * 2 ** 32;
  }

  private snapshotPresent(): (i: number) => boolean {
    const bits = new Uint8Array(this.mapping.pageCount);
    for (let i = 0; i < bits.length; i++) bits[i] = this.isPresent(i) ? 1 : 0;
    // Pages the table did not cover before start as a new registration's would.
    const fresh = !this.mapping.onDemand;
    return (i) => (i < bits.length ? bits[i] === 1 : fresh);
  }

  /** Swap in a new mapping; on failure the old one stays in force. */
  private replace(mapping: Mapping): void {
    this.install(mapping, this.generation + 1);
  }

  private install(mapping: Mapping, generation: number): void {
    this.version++;
    const dm = this.dm;
    const pageBytes = 2 ** mapping.pageShift;
    // Allocate everything first, so a full arena leaves the old translation untouched.
    const newEntries = mapping.pageCount > this.entriesCap ? arenaAlloc(dm, Math.max(1, mapping.pageCount) * MR_PTE_BYTES, 64) : 0;
    const wantThrowAway = mapping.kind === 'all-memory' ? pageBytes : 0;
    let newZero = 0;
    let newSink = 0;
    if (wantThrowAway !== this.throwAwayBytes && wantThrowAway > 0) {
      try {
        newZero = arenaAlloc(dm, wantThrowAway, 4096);
        newSink = arenaAlloc(dm, wantThrowAway, 4096);
      } catch (err) {
        if (newZero !== 0) dm.arena.release(newZero);
        if (newEntries !== 0) dm.arena.release(newEntries);
        throw err;
      }
      // Arena blocks are reused: the zero page must really be zeros.
      new Uint8Array(dm.memory.buffer, newZero, wantThrowAway).fill(0);
    }
    if (newEntries !== 0) {
      if (this.entriesOff !== 0) dm.arena.release(this.entriesOff);
      this.entriesOff = newEntries;
      this.entriesCap = Math.max(1, mapping.pageCount);
    }
    if (wantThrowAway !== this.throwAwayBytes) {
      if (this.zeroOff !== 0) dm.arena.release(this.zeroOff);
      if (this.sinkOff !== 0) dm.arena.release(this.sinkOff);
      this.zeroOff = newZero;
      this.sinkOff = newSink;
      this.throwAwayBytes = wantThrowAway;
    }
    const words = new Uint32Array(dm.memory.buffer, this.entriesOff, mapping.pageCount * 2);
    for (let i = 0; i < mapping.pageCount; i++) {
      const entry = mapping.pageGpa(i) + (mapping.present(i) ? MR_PTE_PRESENT : 0);
      words[2 * i] = entry % 2 ** 32;
      words[2 * i + 1] = Math.floor(entry / 2 ** 32);
    }
    const v = this.view;
    const h = this.offset;
    v.setUint32(h + MR_H_KIND, mapping.kind === 'physical' ? MR_KIND_PHYSICAL : MR_KIND_ALL_MEMORY, true);
    setU64(v, h + MR_H_IOVA, mapping.iova);
    setU64(v, h + MR_H_LENGTH, mapping.length);
    v.setUint32(h + MR_H_PAGE_SHIFT, mapping.pageShift, true);
    v.setUint32(h + MR_H_PAGE_COUNT, mapping.pageCount, true);
    v.setUint32(h + MR_H_ACCESS, mapping.access, true);
    v.setUint32(h + MR_H_FLAGS, mapping.onDemand ? MR_TABLE_ON_DEMAND : 0, true);
    v.setUint32(h + MR_H_ZERO_PAGE, this.zeroOff, true);
    v.setUint32(h + MR_H_SINK_PAGE, this.sinkOff, true);
    v.setUint32(h + MR_H_REGION_TABLE, dm.layout.regionTableOff, true);
    v.setUint32(h + MR_H_ENTRIES, this.entriesOff, true);
    v.setUint32(h + MR_H_GENERATION, generation >>> 0, true);
    // The magic goes in last: a handle is valid only once its table is complete.
    Atomics.store(new Uint32Array(dm.memory.buffer, h, 1), 0, MR_TABLE_MAGIC);
    this.mapping = mapping;
  }
}

// ---- Building and validating mappings --------------------------------------------------------

function physicalMapping(dm: DeviceMemory, spec: PhysicalSpec): Mapping {
  const pageShift = checkPageShift(spec.pageShift ?? 12);
  const access = checkAccess(spec.access);
  const { iova, length, pages } = spec;
  if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(length) || length <= 0 || !Number.isSafeInteger(iova + length)) {
    throw new MrError(MrErrorCode.Overflow, `iova ${iova} and length ${length} must be integers with 0 < length and iova + length < 2^53`);
  }
  const pageBytes = 2 ** pageShift;
  const want = Math.ceil(((iova % pageBytes) + length) / pageBytes);
  if (!Array.isArray(pages) || pages.length !== want) {
    throw new MrError(MrErrorCode.PageCount, `[0x${iova.toString(16)}, +${length}) with ${pageBytes}-byte pages needs ${want} pages, got ${Array.isArray(pages) ? pages.length : 'none'}`);
  }
  const list = pages.slice();
  list.forEach((address) => checkPageAddress(address, pageBytes));
  const onDemand = spec.onDemand === true || (spec.access & MR_ON_DEMAND) !== 0;
  const mapping: Mapping = {
    kind: 'physical', iova, length, pageShift, access, onDemand, sizeBytes: null, pageCount: want,
    pageGpa: (i) => list[i],
    present: () => !onDemand,
  };
  checkGuestMemory(dm, mapping);
  return mapping;
}

function allMemoryMapping(
  dm: DeviceMemory,
  accessIn: number,
  options: AllMemoryOptions,
  keepPresent: ((i: number) => boolean) | null,
  minLength = 0,
): Mapping {
  const pageShift = checkPageShift(options.pageShift ?? 12);
  const access = checkAccess(accessIn);
  const sizeBytes = options.sizeBytes ?? null;
  if (sizeBytes !== null && (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)) {
    throw new MrError(MrErrorCode.Overflow, `all-memory size must be a positive integer below 2^53, got ${sizeBytes}`);
  }
  const pageBytes = 2 ** pageShift;
  const regionsEnd = dm.guest.regions.list().reduce((end, r) => Math.max(end, r.gpa + r.size), 0);
  const length = sizeBytes ?? Math.max(minLength, alignUp(regionsEnd, pageBytes));
  const pageCount = Math.ceil(length / pageBytes);
  if (pageCount >= 2 ** 32) throw new MrError(MrErrorCode.Overflow, `${length} bytes in ${pageBytes}-byte pages is more than 2^32 pages`);
  const onDemand = options.onDemand === true || (accessIn & MR_ON_DEMAND) !== 0;
  return {
    kind: 'all-memory', iova: 0, length, pageShift, access, onDemand, sizeBytes, pageCount,
    pageGpa: (i) => i * pageBytes,
    present: keepPresent ?? (() => !onDemand),
  };
}

function checkPageShift(shift: number): PageShift {
  if (shift !== 12 && shift !== 21) throw new MrError(MrErrorCode.BadPageShift, `page shift must be 12 (4 KiB) or 21 (2 MiB), got ${shift}`);
  return shift;
}

/**
 * Rights as ibv_reg_mr takes them (remote write and atomic need local write too); returns them
 * without MR_ON_DEMAND, which callers turn into an on-demand table.
 */
export function checkAccess(access: number): number {
  const known = MR_ACCESS_ALL | MR_ON_DEMAND;
  if (!Number.isInteger(access) || access < 0 || (access & ~known) !== 0) {
    throw new MrError(MrErrorCode.BadAccess, `access 0x${Number(access).toString(16)} has bits outside 0x${known.toString(16)}`);
  }
  if ((access & (MR_REMOTE_WRITE | MR_REMOTE_ATOMIC)) !== 0 && (access & MR_LOCAL_WRITE) === 0) {
    throw new MrError(MrErrorCode.BadAccess, 'remote write or atomic access requires local write');
  }
  return access & MR_ACCESS_ALL;
}

function checkPageAddress(address: number, pageBytes: number): void {
  if (!Number.isSafeInteger(address) || address < 0 || address % pageBytes !== 0 || !Number.isSafeInteger(address + pageBytes)) {
    throw new MrError(MrErrorCode.Misaligned, `page address ${address} is not a ${pageBytes}-byte aligned guest-physical address`);
  }
}

/** Every present page of a physical MR must be guest memory now (it may span regions). */
function checkGuestMemory(dm: DeviceMemory, m: Mapping): void {
  const pageBytes = 2 ** m.pageShift;
  for (let i = 0; i < m.pageCount; i++) if (m.present(i)) checkPageInGuest(dm, m.pageGpa(i), pageBytes, i);
}

function checkPageInGuest(dm: DeviceMemory, address: number, pageBytes: number, index: number): void {
  const regions = dm.guest.regions;
  if (regions.lookup(address, pageBytes) >= 0) return;
  for (let g = address; g < address + pageBytes; g += 4096) {
    if (regions.lookup(g, 4096) < 0) {
      throw new MrError(MrErrorCode.NotGuestMemory, `page ${index} at ${gpaHex(address as Gpa)} is not guest memory`);
    }
  }
}

function arenaAlloc(dm: DeviceMemory, bytes: number, align: number): number {
  try {
    return dm.arena.alloc(bytes, align);
  } catch (err) {
    if (err instanceof MemoryError && err.code === MemoryErrorCode.NoSpace) throw new MrError(MrErrorCode.NoSpace, err.message);
    throw err;
  }
}

function alignDown(value: number, align: number): number {
  return value - (value % align);
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

function setU64(view: DataView, off: number, value: number): void {
  view.setUint32(off, value % 2 ** 32, true);
  view.setUint32(off + 4, Math.floor(value / 2 ** 32), true);
}
