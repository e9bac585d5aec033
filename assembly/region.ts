// Guest region table lookup: guest-physical address -> offset in the device's shared memory.
//
// Table layout (little-endian, in shared memory, written only by the control path):
//   0   u32 count          regions in use, sorted by gpa, never overlapping
//   4   u32 generation     bumped on every change
//   8   u32 capacity
//   12  u32 reserved
//   16  entries[capacity], 32 bytes each:
//         0 u64 gpa   8 u64 size   16 u64 hostOffset   24 u64 flags
// src/memory/region-table.ts writes it and holds the TypeScript twin of this lookup.

import { ST_OUT_OF_RANGE, ST_OVERFLOW } from "./status";

export const REGION_HEADER_BYTES: u32 = 16;
export const REGION_ENTRY_BYTES: u32 = 32;

/**
 * Translate [gpa, gpa+len) to a memory offset. The range must lie wholly inside one region.
 * Returns the offset (>= 0) or ST_OUT_OF_RANGE / ST_OVERFLOW. Used by the other kernels.
 */
@inline
export function regionLookup(table: usize, gpa: u64, len: u64): i64 {
  const count = load<u32>(table);
  // Binary search for the last region whose start is <= gpa.
  let lo: u32 = 0;
  let hi: u32 = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const start = load<u64>(table + REGION_HEADER_BYTES + <usize>mid * REGION_ENTRY_BYTES);
    if (start <= gpa) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return ST_OUT_OF_RANGE;
  const e = table + REGION_HEADER_BYTES + <usize>(lo - 1) * REGION_ENTRY_BYTES;
  const start = load<u64>(e);
  const size = load<u64>(e, 8);
  const rel = gpa - start;
  // Overflow-safe containment: rel < size and len <= size - rel.
  if (rel >= size) {
    // A zero-length access exactly at a region's end is still inside it.
    if (!(rel == size && len == 0)) return ST_OUT_OF_RANGE;
  }
  if (len > size - rel) return gpa + len < gpa ? ST_OVERFLOW : ST_OUT_OF_RANGE;
  return <i64>(load<u64>(e, 16) + rel);
}

/** JS-facing form of regionLookup: 64-bit values cross the boundary as f64 (exact below 2^53). */
export function regionTranslate(table: usize, gpa: f64, len: f64): f64 {
  if (!(gpa >= 0) || !(len >= 0) || gpa > 1.8e19 || len > 1.8e19) return <f64>ST_OVERFLOW;
  return <f64>regionLookup(table, <u64>gpa, <u64>len);
}
