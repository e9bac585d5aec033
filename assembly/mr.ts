// Memory-registration page tables (constants in mr-abi.ts): iova -> guest-physical pages -> segments in shared memory.
//
// An MR has an on-wire iova range that is separate from the guest memory it covers (DESIGN.md
// R1): a list of guest-physical pages. An all-memory MR (R2) covers guest-physical space
// itself (iova == gpa); its pages with no guest memory behind them map to a throw-away page.
// src/nic/mr/page-table.ts writes the tables; src/nic/mr/translate-twin.ts is the TypeScript
// twin of mrTranslate below.
//
// Page table layout (little-endian, in the device arena, 8-byte aligned, written only by the
// control path):
//   header, 64 bytes
//     0  u32 magic          MR_TABLE_MAGIC while the table is live; cleared on dispose
//     4  u32 kind           MR_KIND_PHYSICAL or MR_KIND_ALL_MEMORY
//     8  u64 iova           first byte of the MR (all-memory: 0)
//     16 u64 length         bytes; iova + length <= 2^53 - 1
//     24 u32 pageShift      12 (4 KiB) or 21 (2 MiB)
//     28 u32 pageCount      entries; page i covers iova [alignDown(iova) + i<<shift, +1<<shift)
//     32 u32 access         MR_* rights of mr-access.ts
//     36 u32 flags          MR_TABLE_ON_DEMAND: pages start absent and fault in (R3)
//     40 u32 zeroPageOff    all-memory: 1<<shift bytes of zeros, never written (read holes)
//     44 u32 sinkPageOff    all-memory: 1<<shift bytes that swallow writes to holes
//     48 u32 regionTableOff the guest region table (region.ts) GPAs resolve through
//     52 u32 entriesOff     the entry array, 8-byte aligned; may move on reregistration
//     56 u32 generation     bumped on every rebuild or reregistration
//     60 u32 reserved
//   entries[pageCount], one u64 each, at entriesOff:
//     bits 63..12  guest-physical address of the page (page aligned, so its low bits are free)
//     bit  0       MR_PTE_PRESENT: clear means "not present", the access faults (ODP, R3)
//   An entry is read with one 64-bit atomic load, so an ODP update (clear present, change the
//   address, set present) is never seen half-done.
//
// Segments written to `out` have exactly the format of src/virtio/chain.ts: 16 bytes each,
//   0 u32 offset in the shared memory  4 u32 len  8 u64 gpa
// and a segment into the zero or sink page carries MR_NO_GPA as its gpa (there is no guest
// memory behind it, so nothing must be dirty-logged for it).
//
// Fault record: when mrTranslate returns ST_PAGE_FAULT, the first 16 bytes of `out` hold
//   0 u64 iova of the first byte of the access inside the absent page
//   8 u32 index of the absent page   12 u32 the access that faulted
// (mrTranslate refuses outCap == 0 for a non-empty access, so there is always room.)

import {
  MR_ACCESS_WRITES, MR_HEADER_BYTES, MR_H_ACCESS, MR_H_ENTRIES, MR_H_IOVA, MR_H_KIND, MR_H_LENGTH, MR_H_MAGIC,
  MR_H_PAGE_COUNT, MR_H_PAGE_SHIFT, MR_H_REGION_TABLE, MR_H_SINK_PAGE, MR_H_ZERO_PAGE, MR_KIND_ALL_MEMORY,
  MR_PTE_BYTES, MR_PTE_PRESENT, MR_SEGMENT_BYTES, MR_TABLE_MAGIC,
} from "./mr-abi";
import { REGION_ENTRY_BYTES, REGION_HEADER_BYTES, regionLookup } from "./region";
import { ST_ACCESS, ST_BAD_KEY, ST_NO_SPACE, ST_OUT_OF_RANGE, ST_OVERFLOW, ST_PAGE_FAULT } from "./status";

/** The gpa of a segment into the zero or sink page: no guest memory is behind it. */
const MR_NO_GPA: u64 = 0xffff_ffff_ffff_ffff;
/** Regions are placed on 4 KiB boundaries, so a 4 KiB piece is wholly inside one or in none. */
const SUB_PAGE_BYTES: u64 = 4096;
const U32_MAX: u64 = 0xffff_ffff;
const TWO_POW_64: f64 = 18446744073709551616.0;

/**
 * Append [off, off+n) for guest address `gpa` (or MR_NO_GPA) to the segment list, merging it
 * into the last segment when both are contiguous in memory and in guest-physical space.
 * Returns the new segment count or ST_NO_SPACE.
 */
// @inline
function emit(out: usize, outCap: u32, count: i32, off: u64, n: u64, gpa: u64): i32 {
  if (count > 0) {
    const last = out + <usize>(count - 1) * MR_SEGMENT_BYTES;
    const lastOff = <u64>load<u32>(last);
    const lastLen = <u64>load<u32>(last, 4);
    const lastGpa = load<u64>(last, 8);
    const sameKind = gpa == MR_NO_GPA ? lastGpa == MR_NO_GPA : lastGpa != MR_NO_GPA && lastGpa + lastLen == gpa;
    if (sameKind && lastOff + lastLen == off && lastLen + n <= U32_MAX) {
      store<u32>(last, <u32>(lastLen + n), 4);
      return count;
    }
  }
  if (<u32>count >= outCap) return ST_NO_SPACE;
  const seg = out + <usize>count * MR_SEGMENT_BYTES;
  store<u32>(seg, <u32>off);
  store<u32>(seg, <u32>n, 4);
  store<u64>(seg, gpa, 8);
  return count + 1;
}

/**
 * Translate the MR range [iova, iova+len) for `access` (MR_* bits the operation uses; local
 * read needs none) into segments at `out` (room for `outCap`). Returns the segment count, or
 * ST_BAD_KEY (not a live table), ST_OVERFLOW (bad numbers, iova+len past 2^64, or `out` past
 * the memory), ST_ACCESS, ST_OUT_OF_RANGE (outside the MR, or a physical MR's page is not
 * guest memory), ST_PAGE_FAULT (fault record at `out`), ST_NO_SPACE. Checks run in that order.
 */
export function mrTranslate(table: usize, iova: f64, len: f64, access: u32, out: usize, outCap: u32): i32 {
  const memBytes = <u64>memory.size() << 16;
  // The table is device-private, but a stale or wrong handle must still not make us trap.
  if ((table & 7) != 0 || <u64>table + <u64>MR_HEADER_BYTES > memBytes) return ST_BAD_KEY;
  if (load<u32>(table, MR_H_MAGIC) != MR_TABLE_MAGIC) return ST_BAD_KEY;
  const shift = load<u32>(table, MR_H_PAGE_SHIFT);
  if (shift != 12 && shift != 21) return ST_BAD_KEY;
  const pageCount = load<u32>(table, MR_H_PAGE_COUNT);
  const entries = <usize>load<u32>(table, MR_H_ENTRIES);
  if ((entries & 7) != 0 || <u64>entries + <u64>pageCount * MR_PTE_BYTES > memBytes) return ST_BAD_KEY;
  const regions = <usize>load<u32>(table, MR_H_REGION_TABLE);
  if (<u64>regions + <u64>REGION_HEADER_BYTES > memBytes) return ST_BAD_KEY;
  if (<u64>regions + <u64>REGION_HEADER_BYTES + <u64>load<u32>(regions) * REGION_ENTRY_BYTES > memBytes) return ST_BAD_KEY;
  if (<u64>out + <u64>outCap * MR_SEGMENT_BYTES > memBytes) return ST_OVERFLOW;

  // 64-bit values arrive as f64: they must be integers in [0, 2^64) (NaN fails every compare).
  if (!(iova >= 0) || !(len >= 0) || iova >= TWO_POW_64 || len >= TWO_POW_64) return ST_OVERFLOW;
  if (Math.floor(iova) != iova || Math.floor(len) != len) return ST_OVERFLOW;

  // Unknown bits are never among the table's rights, so they fail here too.
  if ((access & ~load<u32>(table, MR_H_ACCESS)) != 0) return ST_ACCESS;

  const a = <u64>iova;
  const n = <u64>len;
  const end = a + n;
  if (end < a) return ST_OVERFLOW;
  const mrIova = load<u64>(table, MR_H_IOVA);
  const mrLen = load<u64>(table, MR_H_LENGTH);
  if (a < mrIova || a - mrIova > mrLen || n > mrLen - (a - mrIova)) return ST_OUT_OF_RANGE;
  if (n == 0) return 0;

  const pageBytes: u64 = <u64>1 << shift;
  const pageMask = pageBytes - 1;
  const base = mrIova & ~pageMask;
  // A table shorter than its length says is corrupt: refuse rather than read past it.
  if ((end - 1 - base) >> shift >= <u64>pageCount) return ST_OUT_OF_RANGE;
  if (outCap == 0) return ST_NO_SPACE;

  const allMemory = load<u32>(table, MR_H_KIND) == MR_KIND_ALL_MEMORY;
  const throwAway = <u64>load<u32>(table + <usize>((access & MR_ACCESS_WRITES) != 0 ? MR_H_SINK_PAGE : MR_H_ZERO_PAGE));
  let count: i32 = 0;
  let cur = a;
  while (cur < end) {
    const rel = cur - base;
    const index = <u32>(rel >> shift);
    const pte = atomic.load<u64>(entries + <usize>index * MR_PTE_BYTES);
    const inPage = rel & pageMask;
    let chunk = pageBytes - inPage;
    if (chunk > end - cur) chunk = end - cur;
    if ((pte & MR_PTE_PRESENT) == 0) {
      store<u64>(out, cur);
      store<u32>(out, index, 8);
      store<u32>(out, access, 12);
      return ST_PAGE_FAULT;
    }
    const gpa = (pte & ~pageMask) + inPage;
    const off = regionLookup(regions, gpa, chunk);
    if (off >= 0) {
      count = emit(out, outCap, count, <u64>off, chunk, gpa);
      if (count < 0) return count;
    } else {
      // The chunk is not inside one region: a hole, or a huge page over two regions. Resolve it
      // in 4 KiB pieces, each wholly inside one region or in none.
      let g = gpa;
      const gEnd = gpa + chunk;
      while (g < gEnd) {
        let piece = SUB_PAGE_BYTES - (g & (SUB_PAGE_BYTES - 1));
        if (piece > gEnd - g) piece = gEnd - g;
        const pieceOff = regionLookup(regions, g, piece);
        if (pieceOff >= 0) {
          count = emit(out, outCap, count, <u64>pieceOff, piece, g);
        } else if (allMemory) {
          count = emit(out, outCap, count, throwAway + (g & pageMask), piece, MR_NO_GPA);
        } else {
          return ST_OUT_OF_RANGE;
        }
        if (count < 0) return count;
        g += piece;
      }
    }
    cur += chunk;
  }
  return count;
}
