// The guest region table in shared memory (format in assembly/region.ts) and the TypeScript twin
// of its lookup. Only the control path changes the table, with the datapath quiesced; every
// change bumps the generation word so holders of cached translations can tell.
import { ST_OUT_OF_RANGE, ST_OVERFLOW } from '../wasm/status.js';
import { MemoryError, MemoryErrorCode } from './errors.js';
import { type Gpa, gpaHex } from './gpa.js';
import { REGION_TABLE_CAPACITY } from './layout.js';

const HEADER_BYTES = 16;
const ENTRY_BYTES = 32;

/** One guest RAM region: guest-physical [gpa, gpa+size) lives at [hostOffset, hostOffset+size). */
export interface Region {
  readonly gpa: Gpa;
  readonly size: number;
  readonly hostOffset: number;
}

export class RegionTable {
  private readonly view: DataView;

  constructor(buffer: ArrayBufferLike, readonly tableOff: number) {
    this.view = new DataView(buffer);
  }

  /** Write an empty table (device creation). */
  init(): void {
    this.view.setUint32(this.tableOff, 0, true);
    this.view.setUint32(this.tableOff + 4, 0, true);
    this.view.setUint32(this.tableOff + 8, REGION_TABLE_CAPACITY, true);
  }

  get count(): number {
    return this.view.getUint32(this.tableOff, true);
  }

  get generation(): number {
    return this.view.getUint32(this.tableOff + 4, true);
  }

  /** The regions, sorted by guest-physical address. */
  list(): Region[] {
    const out: Region[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.entry(i));
    return out;
  }

  /** Insert a region; refuses overlaps and a full table. */
  insert(region: Region): void {
    const regions = this.list();
    if (regions.length >= REGION_TABLE_CAPACITY) {
      throw new MemoryError(MemoryErrorCode.RegionConflict, `region table full (${REGION_TABLE_CAPACITY} regions)`);
    }
    this.checkFree(region, regions);
    regions.push(region);
    regions.sort((a, b) => a.gpa - b.gpa);
    this.rewrite(regions);
  }

  /** MemoryError REGION_CONFLICT if `region` overlaps one in the table. */
  checkFree(region: { gpa: Gpa; size: number }, regions: readonly Region[] = this.list()): void {
    for (const r of regions) {
      if (region.gpa < r.gpa + r.size && r.gpa < region.gpa + region.size) {
        throw new MemoryError(MemoryErrorCode.RegionConflict, `region ${gpaHex(region.gpa)}+${region.size} overlaps ${gpaHex(r.gpa)}+${r.size}`);
      }
    }
  }

  /** Remove the region starting at `start`; returns it. */
  remove(start: Gpa): Region {
    const regions = this.list();
    const index = regions.findIndex((r) => r.gpa === start);
    if (index < 0) throw new MemoryError(MemoryErrorCode.NoSuchRegion, `no region starts at ${gpaHex(start)}`);
    const [removed] = regions.splice(index, 1);
    this.rewrite(regions);
    return removed;
  }

  /**
   * The TypeScript twin of the regionLookup kernel: offset of [gpa, gpa+len) in the memory, or
   * ST_OUT_OF_RANGE / ST_OVERFLOW. Inputs are numbers below 2^53.
   */
  lookup(address: number, len: number): number {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(len) || address < 0 || len < 0) return ST_OVERFLOW;
    // No region reaches 2^53, so a larger end is simply outside every region.
    if (!Number.isSafeInteger(address + len)) return ST_OUT_OF_RANGE;
    const count = this.count;
    let lo = 0;
    let hi = count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entryGpa(mid) <= address) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return ST_OUT_OF_RANGE;
    const e = this.tableOff + HEADER_BYTES + (lo - 1) * ENTRY_BYTES;
    const rel = address - this.entryGpa(lo - 1);
    const size = readU64(this.view, e + 8);
    if (rel > size || len > size - rel) return ST_OUT_OF_RANGE;
    return readU64(this.view, e + 16) + rel;
  }

  private entryGpa(index: number): number {
    return readU64(this.view, this.tableOff + HEADER_BYTES + index * ENTRY_BYTES);
  }

  private entry(index: number): Region {
    const e = this.tableOff + HEADER_BYTES + index * ENTRY_BYTES;
    return { gpa: readU64(this.view, e) as Gpa, size: readU64(this.view, e + 8), hostOffset: readU64(this.view, e + 16) };
  }

  private rewrite(regions: Region[]): void {
    regions.forEach((r, i) => {
      const e = this.tableOff + HEADER_BYTES + i * ENTRY_BYTES;
      writeU64(this.view, e, r.gpa);
      writeU64(this.view, e + 8, r.size);
      writeU64(this.view, e + 16, r.hostOffset);
      writeU64(this.view, e + 24, 0);
    });
    this.view.setUint32(this.tableOff, regions.length, true);
    this.view.setUint32(this.tableOff + 4, (this.generation + 1) >>> 0, true);
  }
}

function readU64(view: DataView, off: number): number {
  return view.getUint32(off, true) + view.getUint32(off + 4, true) * 2 ** 32;
}

function writeU64(view: DataView, off: number, value: number): void {
  view.setUint32(off, value % 2 ** 32, true);
  view.setUint32(off + 4, Math.floor(value / 2 ** 32), true);
}
