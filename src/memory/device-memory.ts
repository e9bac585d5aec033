// A device's shared WebAssembly.Memory: creation with the layout of layout.ts, the device arena,
// and hotplug of guest RAM regions into the RAM window. Workers attach to the same memory with
// the plain MemoryLayout and get a GuestMemory view; only the control thread changes regions.
import { Arena } from './arena.js';
import { MemoryError, MemoryErrorCode } from './errors.js';
import { type Gpa, gpa as toGpa } from './gpa.js';
import { GuestMemory } from './guest-memory.js';
import { type LayoutOptions, type MemoryLayout, RAM_ALIGN_BYTES, WASM_PAGE_BYTES, computeLayout } from './layout.js';
import type { Region } from './region-table.js';
import { NO_WRITE_LOG, type WriteLog } from './write-log.js';

/** A part of the device arena given to one allocator: `bytes` from offset `off`. */
export interface ArenaWindow {
  off: number;
  bytes: number;
}

export class DeviceMemory {
  readonly guest: GuestMemory;
  /** Allocator for device-private tables in the arena (control path only). */
  readonly arena: Arena;
  /**
   * The device's dirty log (R4): every write the device and its provider make to guest RAM is
   * marked here (src/migration/dirty-log.ts). Read at each write, so it may be set at any time.
   */
  dirtyLog: WriteLog = NO_WRITE_LOG;
  private readonly ram: Arena;
  private readonly regionOwned = new Map<Gpa, number>();
  /** Attached from another thread: the memory map is the creator's to change. */
  private readonly attached: boolean;

  private constructor(readonly memory: WebAssembly.Memory, readonly layout: MemoryLayout, attached = false, arena?: ArenaWindow) {
    this.attached = attached;
    this.guest = new GuestMemory(memory, layout);
    this.arena = arena === undefined ? new Arena(layout.arenaOff, layout.arenaBytes) : new Arena(arena.off, arena.bytes);
    this.ram = new Arena(layout.ramBase, layout.ramBytes, 'guest RAM window');
  }

  /** Create a device memory at its final size and an empty region table. */
  static create(options: LayoutOptions): DeviceMemory {
    const layout = computeLayout(options);
    const pages = layout.totalBytes / WASM_PAGE_BYTES;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const dm = new DeviceMemory(memory, layout);
    dm.guest.regions.init();
    return dm;
  }

  /**
   * A device memory created elsewhere (another thread), for a device that runs here: the guest's
   * regions are those in the shared region table, and this view's arena allocator starts empty,
   * so only one device may allocate in the arena at a time (a device backend replaced after its
   * thread died allocates over what the dead one held). Regions cannot be plugged through it.
   * With `arena`, this view allocates only inside that window of the arena, one the creator
   * allocated for it, so it can run beside the creator's own allocations (a QP shard's tables).
   */
  static attach(memory: WebAssembly.Memory, layout: MemoryLayout, arena?: ArenaWindow): DeviceMemory {
    if (!(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof SharedArrayBuffer)) {
      throw new MemoryError(MemoryErrorCode.BadState, 'a device memory to attach must be a shared WebAssembly.Memory');
    }
    const expected = computeLayout({ ramBytes: layout.ramBytes, arenaBytes: layout.arenaBytes });
    const same = (Object.keys(expected) as (keyof MemoryLayout)[]).every((k) => expected[k] === layout[k]);
    if (!same || memory.buffer.byteLength < layout.totalBytes) throw new MemoryError(MemoryErrorCode.BadState, 'the layout does not describe this memory');
    if (arena !== undefined) {
      const { off, bytes } = arena;
      const ok = Number.isSafeInteger(off) && Number.isSafeInteger(bytes) && bytes > 0 && off >= layout.arenaOff && off + bytes <= layout.arenaOff + layout.arenaBytes;
      if (!ok) throw new MemoryError(MemoryErrorCode.BadState, `arena window [${off}, +${bytes}) is not inside the arena`);
    }
    return new DeviceMemory(memory, layout, true, arena);
  }

  /**
   * Plug in a guest RAM region at guest-physical `start`; its backing is taken from the RAM
   * window (2 MiB aligned) and reads as zeros. Returns the region with its host offset.
   */
  addRegion(start: number, size: number): Region {
    const region = this.reserveRegion(start, size);
    try {
      this.guest.regions.insert(region);
    } catch (err) {
      this.unreserveRegion(region);
      throw err;
    }
    return region;
  }

  /** Unplug the region that starts at `start`; its backing returns to the RAM window. */
  removeRegion(start: number): Region {
    this.owned('unplug');
    const removed = this.guest.regions.remove(toGpa(start));
    this.releaseRegion(removed);
    return removed;
  }

  /**
   * The first half of a plug whose region-table change another thread makes (the thread running
   * the device, which then sees no access straddle it: src/backend): take the backing of a region
   * at `start` from the RAM window, not yet in the region table. Give it back with
   * unreserveRegion() if the plug does not happen.
   */
  reserveRegion(start: number, size: number): Region {
    this.owned('plug');
    const base = toGpa(start);
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new MemoryError(MemoryErrorCode.Overflow, `region size must be a positive multiple of 4096, got ${size}`);
    }
    if (base % 4096 !== 0 || !Number.isSafeInteger(base + size)) {
      throw new MemoryError(MemoryErrorCode.Overflow, `region start must be 4 KiB aligned and end below 2^53`);
    }
    if (this.regionOwned.has(base)) throw new MemoryError(MemoryErrorCode.RegionConflict, `a region at ${base} is plugged already`);
    this.guest.regions.checkFree({ gpa: base, size });
    const hostOffset = this.ram.alloc(size, RAM_ALIGN_BYTES);
    this.regionOwned.set(base, hostOffset);
    return { gpa: base, size, hostOffset };
  }

  /** Give back a reserved region's backing (its plug did not happen); it never held data. */
  unreserveRegion(region: Region): void {
    this.ram.release(region.hostOffset);
    this.regionOwned.delete(region.gpa);
  }

  /**
   * The second half of an unplug: `region` is out of the region table (and no thread reaches it
   * any more): zero its backing and return it to the RAM window.
   */
  releaseRegion(region: Region): void {
    this.owned('unplug');
    const hostOffset = this.regionOwned.get(region.gpa);
    if (hostOffset === undefined) return;
    // The window starts zeroed and every released range is zeroed here, so a new region reads
    // as zeros without touching (and so committing) its pages when it is plugged.
    new Uint8Array(this.memory.buffer, hostOffset, region.size).fill(0);
    this.ram.release(hostOffset);
    this.regionOwned.delete(region.gpa);
  }

  private owned(what: string): void {
    if (this.attached) throw new MemoryError(MemoryErrorCode.RegionConflict, `cannot ${what} a region through an attached device memory; its creator owns the memory map`);
  }
}
