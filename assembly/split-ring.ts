// Split virtqueue, device side (virtio 1.2 section 2.7): pop available chains into chain records
// (format in src/virtio/chain.ts), push used elements, and notification suppression.
// src/virtio/split-twin.ts is the TypeScript twin; keep the two in step.
//
// Queue block (64 bytes in the device arena, little-endian; written by src/virtio/split-queue.ts
// at setup, then owned by whichever thread runs the queue's device side):
//   0  u16 size            queue size, a power of two <= 32768
//   2  u16 features        bit 0: VIRTIO_F_EVENT_IDX, bit 1: VIRTIO_F_INDIRECT_DESC (kept for
//                          state; a table is followed whenever a descriptor names one, as
//                          Linux vhost does, since refusing it protects nothing)
//   4  u32 descOff         memory offset of the descriptor table   (16 * size bytes)
//   8  u32 availOff        memory offset of the available ring     (6 + 2 * size bytes)
//   12 u32 usedOff         memory offset of the used ring          (6 + 8 * size bytes)
//   16 u32 regionTableOff  the guest region table (assembly/region.ts)
//   20 u16 nextAvail       next available ring slot to pop (16-bit, wraps)
//   22 u16 nextUsed        shadow of the used idx the device last published
//   24 u16 signalledUsed   used idx at the last notification decision (event idx)
//   26 u16 flags           bit 0: signalledUsed is valid
//   28 u32 reserved
//   32 u64 descGpa   40 u64 availGpa   48 u64 usedGpa   (the guest-physical ring addresses, for state)
//   56 u64 reserved
// The three ring offsets were translated and checked once at setup (whole ring inside one region,
// aligned as 2.7 requires), so the kernels index them freely below their sizes. Every buffer a
// descriptor names is translated through the region table here, per pop.

import { regionLookup } from "./region";
import {
  ST_AVAIL_JUMP, ST_BAD_ID, ST_BAD_INDEX, ST_BAD_INDIRECT_LEN, ST_CHAIN_TOO_LONG, ST_LOOP,
  ST_NESTED_INDIRECT, ST_NO_SPACE, ST_OVERFLOW, ST_READ_AFTER_WRITE,
} from "./status";

export const SQ_BLOCK_BYTES: u32 = 64;
export const SQ_FEATURE_EVENT_IDX: u16 = 1;
export const SQ_FEATURE_INDIRECT: u16 = 2;

// virtq_desc flags (2.7.5).
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
// virtq_avail.flags and virtq_used.flags (2.7.7, 2.7.10).
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

const CHAIN_HEADER_BYTES: u32 = 16;
const SEGMENT_BYTES: u32 = 16;
const U32_MAX: u64 = 0xffffffff;

/**
 * Walk the chain starting at descriptor `head` and write its record at `rec` (at most `space`
 * bytes). Returns the record's size in bytes, ST_NO_SPACE if it does not fit, or another status.
 *
 * A chain is zero or more direct descriptors, optionally ending in one descriptor that names an
 * indirect table (2.7.5.3); that descriptor's WRITE flag is ignored (2.7.5.3.2) and so is its
 * NEXT flag, which a driver must not set. A chain holds at most `size` buffer descriptors,
 * counting those of the indirect table (2.7.5.3.1): this is also the loop guard.
 */
@inline
function walkChain(descOff: usize, size: u32, table: usize, head: u32, rec: usize, space: u32): i32 {
  if (space < CHAIN_HEADER_BYTES) return ST_NO_SPACE;
  let base = descOff;
  let limit = size;
  let idx = head;
  let indirect = false;
  let buffers: u32 = 0;
  let ringDescs: u32 = 0;
  let readSegs: u32 = 0;
  let writeSegs: u32 = 0;
  let readBytes: u64 = 0;
  let writeBytes: u64 = 0;
  let seenWrite = false;
  let used: u32 = CHAIN_HEADER_BYTES;
  while (true) {
    const d = base + (<usize>idx << 4);
    const addr = load<u64>(d);
    const len = load<u32>(d, 8);
    const flags = load<u16>(d, 12);
    const next = <u32>load<u16>(d, 14);
    if (!indirect) ringDescs++;
    if (flags & DESC_F_INDIRECT) {
      if (indirect) return ST_NESTED_INDIRECT;
      if (len == 0 || (len & 15) != 0) return ST_BAD_INDIRECT_LEN;
      if (addr + <u64>len < addr) return ST_OVERFLOW;
      const off = regionLookup(table, addr, <u64>len);
      if (off < 0) return <i32>off;
      base = <usize>off;
      limit = len >>> 4;
      idx = 0;
      indirect = true;
      continue;
    }
    if (++buffers > size) return ST_LOOP;
    const isWrite = (flags & DESC_F_WRITE) != 0;
    if (isWrite) seenWrite = true;
    else if (seenWrite) return ST_READ_AFTER_WRITE;
    if (len != 0) {
      if (addr + <u64>len < addr) return ST_OVERFLOW;
      const off = regionLookup(table, addr, <u64>len);
      if (off < 0) return <i32>off;
      if (readBytes + writeBytes + <u64>len > U32_MAX) return ST_CHAIN_TOO_LONG;
      if (space - used < SEGMENT_BYTES) return ST_NO_SPACE;
      const seg = rec + <usize>used;
      store<u32>(seg, <u32>off);
      store<u32>(seg, len, 4);
      store<u64>(seg, addr, 8);
      used += SEGMENT_BYTES;
      if (isWrite) {
        writeSegs++;
        writeBytes += <u64>len;
      } else {
        readSegs++;
        readBytes += <u64>len;
      }
    }
    if ((flags & DESC_F_NEXT) == 0) break;
    if (next >= limit) return ST_BAD_INDEX;
    idx = next;
  }
  store<u16>(rec, <u16>head);
  store<u16>(rec, <u16>ringDescs, 2);
  store<u16>(rec, <u16>readSegs, 4);
  store<u16>(rec, <u16>writeSegs, 6);
  store<u32>(rec, <u32>readBytes, 8);
  store<u32>(rec, <u32>writeBytes, 12);
  return <i32>used;
}

/**
 * Pop up to `maxChains` available chains into records at `out` (`outBytes` bytes). Returns the
 * number popped; a chain that does not fit stays in the ring (ST_NO_SPACE only if none fits).
 * Any other status means the driver broke the ring; the queue must then be reset.
 */
export function splitPop(q: usize, out: usize, outBytes: u32, maxChains: u32): i32 {
  const size = <u32>load<u16>(q);
  const mask = size - 1;
  const descOff = <usize>load<u32>(q, 4);
  const availOff = <usize>load<u32>(q, 8);
  const table = <usize>load<u32>(q, 16);
  const nextAvail = <u32>load<u16>(q, 20);
  // Acquire: ring entries and descriptors written before idx are visible after this load.
  const availIdx = <u32>atomic.load<u16>(availOff + 2);
  const pending = (availIdx - nextAvail) & 0xffff;
  if (pending > size) return ST_AVAIL_JUMP;
  let count: u32 = 0;
  let pos: u32 = 0;
  while (count < maxChains && count < pending) {
    const head = <u32>load<u16>(availOff + 4 + (<usize>((nextAvail + count) & mask) << 1));
    if (head >= size) return ST_BAD_INDEX;
    const r = walkChain(descOff, size, table, head, out + <usize>pos, outBytes - pos);
    if (r == ST_NO_SPACE) {
      if (count == 0) return ST_NO_SPACE;
      break;
    }
    if (r < 0) return r;
    pos += <u32>r;
    count++;
  }
  store<u16>(q, <u16>(nextAvail + count), 20);
  return <i32>count;
}

/**
 * Write `n` used elements ({u32 id, u32 len}, 8 bytes each, at `used`) to the used ring and
 * publish the new used idx. Returns 1 if the driver must be notified, 0 if not (2.7.7), or
 * ST_BAD_ID if an id is not a descriptor index or more elements are pushed than chains popped.
 */
export function splitPushUsed(q: usize, used: usize, n: u32): i32 {
  if (n == 0) return 0;
  const size = <u32>load<u16>(q);
  const mask = size - 1;
  const features = load<u16>(q, 2);
  const availOff = <usize>load<u32>(q, 8);
  const usedOff = <usize>load<u32>(q, 12);
  const nextAvail = <u32>load<u16>(q, 20);
  const nextUsed = <u32>load<u16>(q, 22);
  if (n > ((nextAvail - nextUsed) & 0xffff)) return ST_BAD_ID;
  for (let i: u32 = 0; i < n; i++) {
    if (load<u32>(used + (<usize>i << 3)) >= size) return ST_BAD_ID;
  }
  for (let i: u32 = 0; i < n; i++) {
    store<u64>(usedOff + 4 + (<usize>((nextUsed + i) & mask) << 3), load<u64>(used + (<usize>i << 3)));
  }
  const newIdx = (nextUsed + n) & 0xffff;
  // Release: the elements are visible to a driver that sees the new idx.
  atomic.store<u16>(usedOff + 2, <u16>newIdx);
  store<u16>(q, <u16>newIdx, 22);
  if (features & SQ_FEATURE_EVENT_IDX) {
    // Sequentially consistent after the idx store, so a driver that set used_event before
    // reading idx is either seen here or sees the new idx itself.
    const usedEvent = <u32>atomic.load<u16>(availOff + 4 + (<usize>size << 1));
    const old = <u32>load<u16>(q, 24);
    const valid = load<u16>(q, 26) & 1;
    store<u16>(q, <u16>newIdx, 24);
    store<u16>(q, load<u16>(q, 26) | 1, 26);
    if (!valid) return 1;
    // vring_need_event: notify if used_event lies in [old, newIdx) (16-bit modular).
    return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff) ? 1 : 0;
  }
  return (atomic.load<u16>(availOff) & AVAIL_F_NO_INTERRUPT) != 0 ? 0 : 1;
}

/**
 * Ask the driver to notify on new buffers (before the device sleeps): with event idx set
 * avail_event to the next slot to pop, else clear VIRTQ_USED_F_NO_NOTIFY. Returns 1 if buffers
 * are already available (pop again instead of sleeping), else 0.
 */
export function splitEnableNotify(q: usize): i32 {
  const size = <u32>load<u16>(q);
  const features = load<u16>(q, 2);
  const availOff = <usize>load<u32>(q, 8);
  const usedOff = <usize>load<u32>(q, 12);
  const nextAvail = load<u16>(q, 20);
  if (features & SQ_FEATURE_EVENT_IDX) atomic.store<u16>(usedOff + 4 + (<usize>size << 3), nextAvail);
  else atomic.store<u16>(usedOff, 0);
  return atomic.load<u16>(availOff + 2) != nextAvail ? 1 : 0;
}

/**
 * Tell the driver notifications are not needed (the device is polling). With event idx this is
 * implicit: avail_event stays behind, so the driver's next check finds no need to notify.
 */
export function splitDisableNotify(q: usize): i32 {
  const features = load<u16>(q, 2);
  const usedOff = <usize>load<u32>(q, 12);
  if ((features & SQ_FEATURE_EVENT_IDX) == 0) atomic.store<u16>(usedOff, USED_F_NO_NOTIFY);
  return 0;
}
