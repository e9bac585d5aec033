// Packed virtqueue, device side (virtio 1.2 section 2.8): pop available chains, push used
// descriptors, event suppression. The queue block, descriptor and event layouts are in
// packed-layout.ts; the chain record format is src/virtio/chain.ts. The TypeScript twin is
// src/virtio/packed-twin.ts and must stay step-for-step identical (same checks, same order).
//
// Rules for hostile rings (each a status; the queue is then broken, 2.1.2 NEEDS_RESET):
// - A descriptor is available when its AVAIL bit equals the wrap counter expected at its slot
//   and its USED bit differs (2.8.1). Only the first descriptor of a chain is polled; every later
//   one (reached through NEXT, crossing the ring end flips the expected counter) must also be
//   available, because the driver makes the first available last (2.8.6): one that is not means
//   the chain runs into slots the driver never made available -> ST_AVAIL_JUMP.
// - At most `size` slots can be outstanding: a chain needing more slots than the device does not
//   already hold (size - inflightSlots) -> ST_AVAIL_JUMP; a chain longer than the queue size is
//   checked first -> ST_LOOP (2.8.18 "MUST NOT create a descriptor list longer than the Queue Size").
// - VIRTQ_DESC_F_INDIRECT stands alone: on a ring descriptor that is not the first of its chain,
//   that has NEXT set (2.8.18), without VIRTIO_F_INDIRECT_DESC, or inside an indirect table ->
//   ST_NESTED_INDIRECT. In a table only WRITE counts (2.8.7): NEXT, AVAIL, USED and ids are
//   ignored and the table is walked front to back, len/16 entries, at most `size` (ST_LOOP).
// - Zero-length descriptors give no segment and are not translated, but their WRITE flag still
//   orders them (a readable one after any writable one -> ST_READ_AFTER_WRITE).
// - Every buffer and table is translated through the region table; addr + len past 2^64 ->
//   ST_OVERFLOW; outside one region -> ST_OUT_OF_RANGE. Readable plus writable bytes over
//   2^32 - 1 -> ST_CHAIN_TOO_LONG.

import {
  EVENT_OFF_WRAP,
  PDESC_ADDR,
  PDESC_BYTES,
  PDESC_FLAGS,
  PDESC_ID,
  PDESC_LEN,
  PQ_AVAIL_WRAP,
  PQ_DESC_OFF,
  PQ_DEVICE_EVENT_OFF,
  PQ_DRIVER_EVENT_OFF,
  PQ_FEATURES,
  PQ_FEATURE_EVENT_IDX,
  PQ_FEATURE_INDIRECT,
  PQ_INFLIGHT,
  PQ_NEXT_AVAIL,
  PQ_NEXT_USED,
  PQ_REGION_TABLE_OFF,
  PQ_SIGNAL_SLOT,
  PQ_SIGNAL_VALID,
  PQ_SIGNAL_WRAP,
  PQ_SIZE,
  PQ_USED_WRAP,
  PUSED_BYTES,
  PUSED_DESC_COUNT,
  PUSED_ID,
  PUSED_LEN,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from "./packed-layout";
import { regionLookup } from "./region";
import {
  ST_AVAIL_JUMP,
  ST_BAD_ID,
  ST_BAD_INDIRECT_LEN,
  ST_CHAIN_TOO_LONG,
  ST_LOOP,
  ST_NESTED_INDIRECT,
  ST_NO_SPACE,
  ST_OVERFLOW,
  ST_READ_AFTER_WRITE,
} from "./status";

// Chain record (src/virtio/chain.ts).
const REC_HEADER: usize = 16;
const REC_SEGMENT: usize = 16;

@inline
function isAvail(flags: u32, wrap: u32): bool {
  return ((flags >> 7) & 1) == wrap && ((flags >> 15) & 1) != wrap;
}

/** Offset of guest [addr, addr+len), or ST_OVERFLOW / ST_OUT_OF_RANGE. */
@inline
function translate(table: usize, addr: u64, len: u64): i64 {
  if (addr + len < addr) return ST_OVERFLOW;
  return regionLookup(table, addr, len);
}

/**
 * Walk the chain starting at `slot` into a record at `rec`. Returns the record's byte length
 * (> 0), 0 if the slot holds no available descriptor, ST_NO_SPACE if the record does not fit
 * before `recEnd`, or another status for a broken ring.
 */
function popOne(ring: usize, size: u32, features: u32, table: usize, room: u32, slot: u32, wrap: u32, rec: usize, recEnd: usize): i32 {
  let d = ring + ((<usize>slot) << 4);
  // Acquire: everything the driver wrote before this flags word is visible after it (2.8.21).
  let flags = <u32>atomic.load<u16>(d, PDESC_FLAGS);
  if (!isAvail(flags, wrap)) return 0;
  if (room == 0) return ST_AVAIL_JUMP;
  if (rec + REC_HEADER > recEnd) return ST_NO_SPACE;
  let seg = rec + REC_HEADER;
  let readSegs: u32 = 0;
  let writeSegs: u32 = 0;
  let readBytes: u64 = 0;
  let writeBytes: u64 = 0;
  let seenWrite = false;
  let descCount: u32 = 1;
  let id: u32 = 0;
  let tableLeft: u32 = 0; // entries still to walk in an indirect table; > 0 while inside one
  while (true) {
    if (tableLeft == 0) {
      id = <u32>load<u16>(d, PDESC_ID);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (descCount > 1 || (flags & VIRTQ_DESC_F_NEXT) != 0 || (features & PQ_FEATURE_INDIRECT) == 0) return ST_NESTED_INDIRECT;
        const tableLen = load<u32>(d, PDESC_LEN);
        if (tableLen == 0 || (tableLen & 15) != 0) return ST_BAD_INDIRECT_LEN;
        const entries = tableLen >> 4;
        if (entries > size) return ST_LOOP;
        const tableOff = translate(table, load<u64>(d, PDESC_ADDR), <u64>tableLen);
        if (tableOff < 0) return <i32>tableOff;
        d = <usize>tableOff;
        tableLeft = entries;
        flags = <u32>load<u16>(d, PDESC_FLAGS);
      }
    }
    if (tableLeft != 0 && (flags & VIRTQ_DESC_F_INDIRECT) != 0) return ST_NESTED_INDIRECT;

    // One buffer element.
    const len = load<u32>(d, PDESC_LEN);
    const isWrite = (flags & VIRTQ_DESC_F_WRITE) != 0;
    if (isWrite) seenWrite = true;
    else if (seenWrite) return ST_READ_AFTER_WRITE;
    if (readBytes + writeBytes + <u64>len > 0xffffffff) return ST_CHAIN_TOO_LONG;
    if (len != 0) {
      const addr = load<u64>(d, PDESC_ADDR);
      const off = translate(table, addr, <u64>len);
      if (off < 0) return <i32>off;
      if (seg + REC_SEGMENT > recEnd) return ST_NO_SPACE;
      store<u32>(seg, <u32>off);
      store<u32>(seg, len, 4);
      store<u64>(seg, addr, 8);
      seg += REC_SEGMENT;
      if (isWrite) {
        writeSegs++;
        writeBytes += len;
      } else {
        readSegs++;
        readBytes += len;
      }
    }

    // Next element: the next table entry, or the next ring slot if NEXT is set.
    if (tableLeft != 0) {
      if (--tableLeft == 0) break;
      d += PDESC_BYTES;
      flags = <u32>load<u16>(d, PDESC_FLAGS);
      continue;
    }
    if ((flags & VIRTQ_DESC_F_NEXT) == 0) break;
    if (++slot == size) {
      slot = 0;
      wrap ^= 1;
    }
    descCount++;
    if (descCount > size) return ST_LOOP;
    if (descCount > room) return ST_AVAIL_JUMP;
    d = ring + ((<usize>slot) << 4);
    flags = <u32>load<u16>(d, PDESC_FLAGS);
    if (!isAvail(flags, wrap)) return ST_AVAIL_JUMP;
  }
  store<u16>(rec, <u16>id);
  store<u16>(rec, <u16>descCount, 2);
  store<u16>(rec, <u16>readSegs, 4);
  store<u16>(rec, <u16>writeSegs, 6);
  store<u32>(rec, <u32>readBytes, 8);
  store<u32>(rec, <u32>writeBytes, 12);
  return <i32>(seg - rec);
}

/**
 * Pop up to `maxChains` available chains into chain records at [out, out+outBytes). Returns the
 * number popped, stopping early (with the count so far) before a chain whose record does not
 * fit; ST_NO_SPACE if not even the first fits; a status < 0 if the driver broke the ring (chains
 * popped before the broken one stay popped).
 */
export function packedPop(q: usize, out: usize, outBytes: u32, maxChains: u32): i32 {
  const size = load<u32>(q, PQ_SIZE);
  const features = load<u32>(q, PQ_FEATURES);
  const ring = <usize>load<u32>(q, PQ_DESC_OFF);
  const table = <usize>load<u32>(q, PQ_REGION_TABLE_OFF);
  let slot = <u32>load<u16>(q, PQ_NEXT_AVAIL);
  let wrap = <u32>load<u16>(q, PQ_AVAIL_WRAP);
  let inflight = load<u32>(q, PQ_INFLIGHT);
  const recEnd = out + <usize>outBytes;
  let rec = out;
  let count: u32 = 0;
  let result: i32 = 0;
  while (count < maxChains) {
    const r = popOne(ring, size, features, table, size - inflight, slot, wrap, rec, recEnd);
    if (r == 0) break;
    if (r < 0) {
      result = r == ST_NO_SPACE && count > 0 ? 0 : r;
      break;
    }
    const descCount = <u32>load<u16>(rec, 2);
    slot += descCount;
    if (slot >= size) {
      slot -= size;
      wrap ^= 1;
    }
    inflight += descCount;
    rec += <usize>r;
    count++;
  }
  store<u16>(q, <u16>slot, PQ_NEXT_AVAIL);
  store<u16>(q, <u16>wrap, PQ_AVAIL_WRAP);
  store<u32>(q, inflight, PQ_INFLIGHT);
  return result < 0 ? result : <i32>count;
}

/** Position of (slot, wrap) on the 2*size cycle the two wrap counter values make. */
@inline
function ringPos(slot: u32, wrap: u32, size: u32): u32 {
  return wrap != 0 ? slot : slot + size;
}

/**
 * Write `n` used elements (8 bytes each at `used`: u16 id, u16 descCount, u32 len) as used
 * descriptors, in order, each advancing nextUsed by its descCount. The first descriptor's flags
 * are written last, so the driver sees the batch at once (2.8.6). Returns 1 if the driver asked
 * to be notified (driver event suppression, 2.8.10), 0 if not, ST_BAD_ID if a descCount is 0 or
 * the batch uses more slots than the device holds.
 */
export function packedPushUsed(q: usize, used: usize, n: u32): i32 {
  if (n == 0) return 0;
  const size = load<u32>(q, PQ_SIZE);
  const ring = <usize>load<u32>(q, PQ_DESC_OFF);
  const inflight = load<u32>(q, PQ_INFLIGHT);
  let total: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const dc = <u32>load<u16>(used + <usize>i * PUSED_BYTES, PUSED_DESC_COUNT);
    if (dc == 0 || dc > inflight - total) return ST_BAD_ID;
    total += dc;
  }
  let slot = <u32>load<u16>(q, PQ_NEXT_USED);
  let wrap = <u32>load<u16>(q, PQ_USED_WRAP);
  let firstDesc: usize = 0;
  let firstFlags: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const u = used + <usize>i * PUSED_BYTES;
    const len = load<u32>(u, PUSED_LEN);
    const d = ring + ((<usize>slot) << 4);
    store<u32>(d, len, PDESC_LEN);
    store<u16>(d, load<u16>(u, PUSED_ID), PDESC_ID);
    // Used: AVAIL and USED both equal the device wrap counter; WRITE says data was written (2.8.3).
    let flags: u32 = wrap != 0 ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    if (len != 0) flags |= VIRTQ_DESC_F_WRITE;
    if (i == 0) {
      firstDesc = d;
      firstFlags = flags;
    } else {
      atomic.store<u16>(d, <u16>flags, PDESC_FLAGS);
    }
    slot += <u32>load<u16>(u, PUSED_DESC_COUNT);
    if (slot >= size) {
      slot -= size;
      wrap ^= 1;
    }
  }
  // Release: the ids and lengths above are visible before the driver sees this flags word.
  atomic.store<u16>(firstDesc, <u16>firstFlags, PDESC_FLAGS);
  store<u16>(q, <u16>slot, PQ_NEXT_USED);
  store<u16>(q, <u16>wrap, PQ_USED_WRAP);
  store<u32>(q, inflight - total, PQ_INFLIGHT);
  return needsNotify(q, size, slot, wrap);
}

/** Driver event suppression check after publishing used descriptors up to (slot, wrap). */
@inline
function needsNotify(q: usize, size: u32, slot: u32, wrap: u32): i32 {
  const oldPos = ringPos(<u32>load<u16>(q, PQ_SIGNAL_SLOT), <u32>load<u16>(q, PQ_SIGNAL_WRAP), size);
  const valid = load<u32>(q, PQ_SIGNAL_VALID);
  store<u16>(q, <u16>slot, PQ_SIGNAL_SLOT);
  store<u16>(q, <u16>wrap, PQ_SIGNAL_WRAP);
  store<u32>(q, 1, PQ_SIGNAL_VALID);
  // The seq-cst flags store above orders this load after it (2.8.22: barrier before reading).
  const event = atomic.load<u32>(<usize>load<u32>(q, PQ_DRIVER_EVENT_OFF));
  const mode = (event >> 16) & 3;
  if (mode == RING_EVENT_FLAGS_DISABLE) return 0;
  if (mode != RING_EVENT_FLAGS_DESC || (load<u32>(q, PQ_FEATURES) & PQ_FEATURE_EVENT_IDX) == 0) return 1;
  if (valid == 0) return 1;
  const off = event & 0x7fff;
  // An offset past the ring names no descriptor: that event never fires.
  if (off >= size) return 0;
  const cycle = size << 1;
  const newPos = ringPos(slot, wrap, size);
  const eventPos = ringPos(off, (event >> 15) & 1, size);
  // Notify when the event slot is among those used since the last check: [oldPos, newPos).
  const sinceOld = (newPos + cycle - oldPos) % cycle;
  const toEvent = (eventPos + cycle - oldPos) % cycle;
  return toEvent < sinceOld ? 1 : 0;
}

/**
 * Ask the driver for available buffer notifications (device event suppression, 2.8.10): with
 * VIRTIO_F_EVENT_IDX, DESC mode naming the next slot the device will poll; else ENABLE.
 * Returns 1 if a chain is already available there (pop again before sleeping), else 0.
 */
export function packedEnableNotify(q: usize): i32 {
  const slot = <u32>load<u16>(q, PQ_NEXT_AVAIL);
  const wrap = <u32>load<u16>(q, PQ_AVAIL_WRAP);
  const value: u32 = (load<u32>(q, PQ_FEATURES) & PQ_FEATURE_EVENT_IDX) != 0
    ? (RING_EVENT_FLAGS_DESC << 16) | (wrap << 15) | slot
    : RING_EVENT_FLAGS_ENABLE << 16;
  atomic.store<u32>(<usize>load<u32>(q, PQ_DEVICE_EVENT_OFF), value, EVENT_OFF_WRAP);
  // Seq-cst store then load: a driver that made a chain available after our check sees the
  // enabled event and kicks (2.8.21).
  const d = <usize>load<u32>(q, PQ_DESC_OFF) + ((<usize>slot) << 4);
  return isAvail(<u32>atomic.load<u16>(d, PDESC_FLAGS), wrap) ? 1 : 0;
}

/** Tell the driver not to send available buffer notifications (the device is polling). */
export function packedDisableNotify(q: usize): i32 {
  atomic.store<u32>(<usize>load<u32>(q, PQ_DEVICE_EVENT_OFF), RING_EVENT_FLAGS_DISABLE << 16, EVENT_OFF_WRAP);
  return 0;
}
