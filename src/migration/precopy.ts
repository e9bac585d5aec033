// Pre-copy of guest RAM (DESIGN.md "Migration"; R4): round 0 sends every page of every region,
// each later round the pages the dirty logs caught since the last harvest, until the dirty set
// is small enough to send with the guest stopped (or a round limit says stop trying). Pages are
// read after their bits were harvested, so a write that races a round re-marks its page and the
// page goes again in the next round; the final round's pages are read with the guest stopped.
import type { DeviceMemory } from '../memory/device-memory.js';
import { MigrationError, MigrationErrorCode } from './errors.js';
import { PAGES_PER_BATCH, PAGE_BYTES, PageBatch, PageKind, type DecodedPages, type RegionSpec } from './messages.js';

/** What the coordinator needs of a dirty log (src/migration/dirty-log.ts, vhost-user format). */
export interface PageLog {
  readonly enabled: boolean;
  /** A write could not be marked (past the covered range); the owner of the log clears it. */
  overflowed?: boolean;
  start(): void;
  stop(): void;
  /** Dirty page numbers (4 KiB pages of GPA space) since the last harvest; clears them. */
  harvest(): Uint32Array;
}

export interface PrecopyPolicy {
  /** Stop iterating once a round would send fewer than this many pages. */
  stopBelowPages: number;
  /** Pre-copy rounds at most (round 0, the full copy, included); then stop and copy anyway. */
  maxRounds: number;
}

export const DEFAULT_PRECOPY: PrecopyPolicy = { stopBelowPages: 256, maxRounds: 30 };

export type StopReason = 'converged' | 'round-limit';

/**
 * After `roundsDone` pre-copy rounds, with `dirtyPages` dirty now: stop and copy (and why), or
 * null to run another round. Converged wins over the limit when both hold.
 */
export function precopyDecision(policy: PrecopyPolicy, roundsDone: number, dirtyPages: number): StopReason | null {
  if (dirtyPages < policy.stopBelowPages) return 'converged';
  if (roundsDone >= policy.maxRounds) return 'round-limit';
  return null;
}

export function checkPolicy(p: PrecopyPolicy): PrecopyPolicy {
  if (!Number.isSafeInteger(p.stopBelowPages) || p.stopBelowPages < 0) throw new RangeError(`stopBelowPages ${p.stopBelowPages}`);
  if (!Number.isSafeInteger(p.maxRounds) || p.maxRounds < 1) throw new RangeError(`maxRounds ${p.maxRounds} (at least 1: the full copy)`);
  return p;
}

/** The guest RAM regions of a device memory, by guest-physical address. */
export function ramRegions(dm: DeviceMemory): RegionSpec[] {
  return dm.guest.regions.list().map((r) => ({ gpa: r.gpa, size: r.size }));
}

/** Every page number of the regions, in address order. */
export function allPages(regions: readonly RegionSpec[]): Uint32Array {
  const total = regions.reduce((n, r) => n + r.size / PAGE_BYTES, 0);
  const out = new Uint32Array(total);
  let i = 0;
  for (const r of [...regions].sort((a, b) => a.gpa - b.gpa)) {
    const first = r.gpa / PAGE_BYTES;
    for (let p = 0; p < r.size / PAGE_BYTES; p++) out[i++] = first + p;
  }
  return out;
}

/** The sorted union of page sets, each page once. */
export function unionPages(...sets: readonly Uint32Array[]): Uint32Array {
  const all = new Uint32Array(sets.reduce((n, s) => n + s.length, 0));
  let off = 0;
  for (const s of sets) {
    all.set(s, off);
    off += s.length;
  }
  all.sort();
  let n = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) all[n++] = all[i];
  return all.slice(0, n);
}

/**
 * Harvest both logs: pages the device wrote ∪ pages the guest (vCPU) wrote. A log that lost a
 * write (it reached past what the log covers, a region plugged above it: `overflowed`) can no
 * longer vouch for any page, so then every page of `regions` is dirty, and the flag is cleared:
 * a write lost after this harvest raises it again for the next.
 */
export function harvestAll(logs: readonly PageLog[], regions: readonly { gpa: number; size: number }[]): Uint32Array {
  const harvested = unionPages(...logs.map((l) => l.harvest()));
  const lost = logs.filter((l) => l.overflowed === true);
  if (lost.length === 0) return harvested;
  for (const l of lost) l.overflowed = false;
  return allPages(regions);
}

export interface PagesSent {
  pages: number;
  /** Pages sent as all zeros (5 bytes each on the wire). */
  zeroPages: number;
  /** Frame bytes. */
  bytes: number;
}

/**
 * Read `pageNos` from guest memory into PAGES frames, synchronously: the bytes are those of this
 * instant. A page outside every region (a region unplugged since it was logged) is skipped.
 * `emit` takes each frame as it fills.
 */
export function readPages(dm: DeviceMemory, round: number, pageNos: Uint32Array, emit: (frame: Uint8Array) => void, from = 0, to = pageNos.length): PagesSent {
  const sent: PagesSent = { pages: 0, zeroPages: 0, bytes: 0 };
  const guest = dm.guest;
  let batch = new PageBatch(round);
  const flush = (): void => {
    if (batch.length === 0) return;
    const frame = batch.finish();
    sent.bytes += frame.length;
    emit(frame);
  };
  for (let i = from; i < to; i++) {
    const page = pageNos[i];
    const off = guest.tryTranslate(page * PAGE_BYTES, PAGE_BYTES);
    if (off < 0) continue;
    if (batch.add(page, guest.bytes.subarray(off, off + PAGE_BYTES))) sent.zeroPages++;
    sent.pages++;
    if (batch.full) {
      flush();
      batch = new PageBatch(round);
    }
  }
  flush();
  return sent;
}

/**
 * Send `pageNos` as round `round`, a batch at a time, reading each batch just before it goes and
 * yielding to the event loop between batches so the guest and its traffic keep running.
 */
export async function sendPages(
  dm: DeviceMemory,
  round: number,
  pageNos: Uint32Array,
  send: (frame: Uint8Array) => Promise<void>,
  between: () => void = () => {},
): Promise<PagesSent> {
  const total: PagesSent = { pages: 0, zeroPages: 0, bytes: 0 };
  for (let from = 0; from < pageNos.length; from += PAGES_PER_BATCH) {
    between();
    const frames: Uint8Array[] = [];
    const s = readPages(dm, round, pageNos, (f) => frames.push(f), from, Math.min(pageNos.length, from + PAGES_PER_BATCH));
    for (const f of frames) await send(f);
    total.pages += s.pages;
    total.zeroPages += s.zeroPages;
    total.bytes += s.bytes;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return total;
}

/** The destination's side: lay the RAM out as the source's, in the same region order. */
export function planRam(dm: DeviceMemory, regions: readonly RegionSpec[]): void {
  for (const r of regions) {
    try {
      dm.addRegion(r.gpa, r.size);
    } catch (err) {
      throw new MigrationError(MigrationErrorCode.Refused, `guest region ${r.gpa}+${r.size} does not fit this memory: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** Write a received batch into guest memory; a page outside the guest's regions is refused. */
export function writePages(dm: DeviceMemory, batch: DecodedPages): number {
  const guest = dm.guest;
  let raw = 0;
  for (let i = 0; i < batch.pageNos.length; i++) {
    const page = batch.pageNos[i];
    const off = guest.tryTranslate(page * PAGE_BYTES, PAGE_BYTES);
    if (off < 0) throw new MigrationError(MigrationErrorCode.Malformed, `PAGES: page ${page} lies outside the guest's RAM`);
    if (batch.kinds[i] === PageKind.Raw) {
      guest.bytes.set(batch.data.subarray(raw * PAGE_BYTES, (raw + 1) * PAGE_BYTES), off);
      raw++;
    } else {
      guest.bytes.fill(0, off, off + PAGE_BYTES);
    }
  }
  return batch.pageNos.length;
}
