// Dirty page log (DESIGN.md "Migration", R4): harvest and mark kernels over a bitmap in the
// vhost-user log format (vhost-user spec, "Migration": bit n % 8 of byte n / 8 stands for the
// 4 KiB guest-physical page n). src/migration/dirty-twin.ts is the TypeScript twin and
// src/migration/dirty-log.ts the user; keep the three in step.
//
// The bitmap is 8-byte aligned and a multiple of 8 bytes long, so every 64-bit word of it can be
// taken with one atomic exchange. Writers set bits with atomic OR (any width: on a little-endian
// memory, bit n of the byte array is bit n of every wider word view), so a bit set while the
// harvester scans is either taken by this harvest or left for the next one, never lost.
//
// Harvest output: u32 page numbers, ascending, at `out` (4-aligned, room for outCap). The scan
// resumes from a cursor (a byte offset into the bitmap, a multiple of 8) kept in memory at
// `cursorPtr`, so a dirty set larger than the output is drained in chunks: call again until the
// cursor equals bitmapBytes.

import { ST_MISALIGNED, ST_OUT_OF_RANGE, ST_OVERFLOW } from "./status";

export const DIRTY_PAGE_SHIFT: u32 = 12;
/** Largest bitmap whose page numbers (bit indices) still fit in a u32: 2^32 pages, 16 TiB. */
export const DIRTY_MAX_BITMAP_BYTES: u32 = 1 << 29;

/** 0 if [ptr, ptr+bytes) is inside the memory and ptr is `align`-aligned; else a status. */
@inline
function checkSpan(ptr: usize, bytes: u64, align: usize): i32 {
  if ((ptr & (align - 1)) != 0) return ST_MISALIGNED;
  if (<u64>ptr + bytes > (<u64>memory.size() << 16)) return ST_OUT_OF_RANGE;
  return 0;
}

@inline
function checkBitmap(bitmap: usize, bitmapBytes: u32): i32 {
  if ((bitmapBytes & 7) != 0) return ST_MISALIGNED;
  if (bitmapBytes > DIRTY_MAX_BITMAP_BYTES) return ST_OVERFLOW;
  return checkSpan(bitmap, <u64>bitmapBytes, 8);
}

/**
 * Take dirty pages out of the bitmap: from the cursor on, skip empty 64- and 16-byte stretches
 * with SIMD, exchange each non-empty 64-bit word with 0 and write its pages to `out`. When `out`
 * is full, bits of the current word that did not fit are put back (atomic OR) and the scan stops
 * at the next non-empty word, leaving the cursor there. Returns the pages written, or a status
 * (bad alignment or spans outside the memory; then nothing is touched).
 */
export function dirtyHarvest(bitmap: usize, bitmapBytes: u32, cursorPtr: usize, out: usize, outCap: u32): i32 {
  let st = checkBitmap(bitmap, bitmapBytes);
  if (st == 0) st = checkSpan(cursorPtr, 4, 4);
  if (st == 0) st = checkSpan(out, <u64>outCap << 2, 4);
  if (st != 0) return st;
  let cursor = load<u32>(cursorPtr);
  if ((cursor & 7) != 0) return ST_MISALIGNED;
  if (cursor > bitmapBytes) return ST_OUT_OF_RANGE;
  const end = bitmapBytes;
  let count: u32 = 0;
  while (cursor < end) {
    // Empty stretches: four vectors at a time, then single ones (plain loads: a bit set just
    // after we looked belongs to the next harvest anyway).
    while (cursor + 64 <= end) {
      const p = bitmap + <usize>cursor;
      const any = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
      if (v128.any_true(any)) break;
      cursor += 64;
    }
    while (cursor + 16 <= end && !v128.any_true(v128.load(bitmap + <usize>cursor))) cursor += 16;
    if (cursor >= end) break;
    const w = bitmap + <usize>cursor;
    if (load<u64>(w) != 0) {
      if (count == outCap) break;
      let bits = atomic.xchg<u64>(w, 0);
      const base = cursor << 3;
      while (bits != 0 && count < outCap) {
        store<u32>(out + (<usize>count << 2), base + <u32>ctz(bits));
        bits &= bits - 1;
        count++;
      }
      if (bits != 0) {
        // Out of room inside this word: give the rest back; the next call starts here.
        atomic.or<u64>(w, bits);
        break;
      }
    }
    cursor += 8;
  }
  store<u32>(cursorPtr, cursor);
  return <i32>count;
}

/**
 * Mark guest-physical [gpa, gpa+lenBytes) dirty: atomic OR of its pages' bits, a 32-bit word at
 * a time. Returns the pages marked (capped at i32 max), 0 for an empty range, ST_OVERFLOW for an
 * address or length that is not a number below 2^53, or ST_OUT_OF_RANGE if the range reaches
 * past the pages the bitmap covers (the covered part is still marked, so nothing written inside
 * is lost; the caller must treat the rest as dirty by other means).
 */
export function dirtyMark(bitmap: usize, bitmapBytes: u32, gpa: f64, lenBytes: f64): i32 {
  const st = checkBitmap(bitmap, bitmapBytes);
  if (st != 0) return st;
  if (!(gpa >= 0) || !(lenBytes >= 0) || gpa > 9007199254740991.0 || lenBytes > 9007199254740991.0) return ST_OVERFLOW;
  if (lenBytes < 1) return 0;
  const pages = <u64>bitmapBytes << 3;
  const first = <u64>gpa >> DIRTY_PAGE_SHIFT;
  let last = (<u64>gpa + <u64>lenBytes - 1) >> DIRTY_PAGE_SHIFT;
  if (first >= pages) return ST_OUT_OF_RANGE;
  let result: i32 = 0;
  if (last >= pages) {
    last = pages - 1;
    result = ST_OUT_OF_RANGE;
  }
  const fw = <u32>(first >> 5);
  const lw = <u32>(last >> 5);
  const head: u32 = 0xffffffff << <u32>(first & 31);
  const tail: u32 = 0xffffffff >>> (31 - <u32>(last & 31));
  if (fw == lw) {
    atomic.or<u32>(bitmap + (<usize>fw << 2), head & tail);
  } else {
    atomic.or<u32>(bitmap + (<usize>fw << 2), head);
    for (let i = fw + 1; i < lw; i++) atomic.or<u32>(bitmap + (<usize>i << 2), 0xffffffff);
    atomic.or<u32>(bitmap + (<usize>lw << 2), tail);
  }
  if (result < 0) return result;
  const n = last - first + 1;
  return n > 0x7fffffff ? 0x7fffffff : <i32>n;
}
