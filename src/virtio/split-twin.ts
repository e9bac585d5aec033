// The TypeScript twin of the split ring kernels (assembly/split-ring.ts): the same functions with
// the same results over the same shared memory. It is the oracle the tests compare the Wasm
// kernels with, and the fallback engine. 64-bit guest values are handled as two 32-bit halves.
import { CHAIN_HEADER_BYTES, SEGMENT_BYTES, writeChainHeader, writeSegment } from './chain.js';
import {
  SQ_AVAIL_OFF, SQ_DESC_OFF, SQ_FEATURES, SQ_FEATURE_EVENT_IDX, SQ_FLAGS, SQ_FLAG_SIGNALLED_VALID,
  SQ_NEXT_AVAIL, SQ_NEXT_USED, SQ_REGION_TABLE_OFF, SQ_SIGNALLED_USED, SQ_SIZE, SQ_USED_OFF, VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, type SplitKernels,
} from './split-block.js';
import {
  ST_AVAIL_JUMP, ST_BAD_ID, ST_BAD_INDEX, ST_BAD_INDIRECT_LEN, ST_CHAIN_TOO_LONG, ST_LOOP, ST_NESTED_INDIRECT,
  ST_NO_SPACE, ST_OUT_OF_RANGE, ST_OVERFLOW, ST_READ_AFTER_WRITE,
} from '../wasm/status.js';

const TWO_32 = 2 ** 32;
const U32_MAX = TWO_32 - 1;
/** High word at or above this means the address is >= 2^53, beyond every region. */
const HI_SAFE_LIMIT = 2 ** 21;

/** The twin of the split ring kernels over `memory` (which must not grow). */
export function splitTwin(memory: WebAssembly.Memory): SplitKernels {
  const view = new DataView(memory.buffer);
  const words = new Uint16Array(memory.buffer);

  /** regionLookup (assembly/region.ts) for a 64-bit address given as halves, len < 2^32. */
  function lookup(table: number, lo: number, hi: number, len: number): number {
    if (hi >= HI_SAFE_LIMIT) return ST_OUT_OF_RANGE;
    const address = hi * TWO_32 + lo;
    const count = view.getUint32(table, true);
    let a = 0;
    let b = count;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const e = table + 16 + mid * 32;
      if (view.getUint32(e, true) + view.getUint32(e + 4, true) * TWO_32 <= address) a = mid + 1;
      else b = mid;
    }
    if (a === 0) return ST_OUT_OF_RANGE;
    const e = table + 16 + (a - 1) * 32;
    const rel = address - (view.getUint32(e, true) + view.getUint32(e + 4, true) * TWO_32);
    const size = view.getUint32(e + 8, true) + view.getUint32(e + 12, true) * TWO_32;
    if (rel > size || len > size - rel) return ST_OUT_OF_RANGE;
    return view.getUint32(e + 16, true) + view.getUint32(e + 20, true) * TWO_32 + rel;
  }

  function walkChain(descOff: number, size: number, table: number, head: number, rec: number, space: number): number {
    if (space < CHAIN_HEADER_BYTES) return ST_NO_SPACE;
    let base = descOff;
    let limit = size;
    let idx = head;
    let indirect = false;
    let buffers = 0;
    let ringDescs = 0;
    let readSegs = 0;
    let writeSegs = 0;
    let readBytes = 0;
    let writeBytes = 0;
    let seenWrite = false;
    let used = CHAIN_HEADER_BYTES;
    for (;;) {
      const d = base + idx * 16;
      const lo = view.getUint32(d, true);
      const hi = view.getUint32(d + 4, true);
      const len = view.getUint32(d + 8, true);
      const flags = view.getUint16(d + 12, true);
      const next = view.getUint16(d + 14, true);
      if (!indirect) ringDescs++;
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (indirect) return ST_NESTED_INDIRECT;
        if (len === 0 || (len & 15) !== 0) return ST_BAD_INDIRECT_LEN;
        if (hi === U32_MAX && lo + len > U32_MAX) return ST_OVERFLOW;
        const off = lookup(table, lo, hi, len);
        if (off < 0) return off;
        base = off;
        limit = len >>> 4;
        idx = 0;
        indirect = true;
        continue;
      }
      if (++buffers > size) return ST_LOOP;
      const isWrite = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (isWrite) seenWrite = true;
      else if (seenWrite) return ST_READ_AFTER_WRITE;
      if (len !== 0) {
        if (hi === U32_MAX && lo + len > U32_MAX) return ST_OVERFLOW;
        const off = lookup(table, lo, hi, len);
        if (off < 0) return off;
        if (readBytes + writeBytes + len > U32_MAX) return ST_CHAIN_TOO_LONG;
        if (space - used < SEGMENT_BYTES) return ST_NO_SPACE;
        const seg = rec + used;
        writeSegment(view, seg, off, len, lo, hi);
        used += SEGMENT_BYTES;
        if (isWrite) {
          writeSegs++;
          writeBytes += len;
        } else {
          readSegs++;
          readBytes += len;
        }
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= limit) return ST_BAD_INDEX;
      idx = next;
    }
    writeChainHeader(view, rec, head, ringDescs, readSegs, writeSegs, readBytes, writeBytes);
    return used;
  }

  function splitPop(q: number, out: number, outBytes: number, maxChains: number): number {
    outBytes >>>= 0;
    maxChains >>>= 0;
    const size = view.getUint16(q + SQ_SIZE, true);
    const mask = size - 1;
    const descOff = view.getUint32(q + SQ_DESC_OFF, true);
    const availOff = view.getUint32(q + SQ_AVAIL_OFF, true);
    const table = view.getUint32(q + SQ_REGION_TABLE_OFF, true);
    const nextAvail = view.getUint16(q + SQ_NEXT_AVAIL, true);
    const availIdx = Atomics.load(words, (availOff + 2) >>> 1);
    const pending = (availIdx - nextAvail) & 0xffff;
    if (pending > size) return ST_AVAIL_JUMP;
    let count = 0;
    let pos = 0;
    while (count < maxChains && count < pending) {
      const head = view.getUint16(availOff + 4 + ((nextAvail + count) & mask) * 2, true);
      if (head >= size) return ST_BAD_INDEX;
      const r = walkChain(descOff, size, table, head, out + pos, outBytes - pos);
      if (r === ST_NO_SPACE) {
        if (count === 0) return ST_NO_SPACE;
        break;
      }
      if (r < 0) return r;
      pos += r;
      count++;
    }
    view.setUint16(q + SQ_NEXT_AVAIL, (nextAvail + count) & 0xffff, true);
    return count;
  }

  function splitPushUsed(q: number, used: number, n: number): number {
    n >>>= 0;
    if (n === 0) return 0;
    const size = view.getUint16(q + SQ_SIZE, true);
    const mask = size - 1;
    const features = view.getUint16(q + SQ_FEATURES, true);
    const availOff = view.getUint32(q + SQ_AVAIL_OFF, true);
    const usedOff = view.getUint32(q + SQ_USED_OFF, true);
    const nextAvail = view.getUint16(q + SQ_NEXT_AVAIL, true);
    const nextUsed = view.getUint16(q + SQ_NEXT_USED, true);
    if (n > ((nextAvail - nextUsed) & 0xffff)) return ST_BAD_ID;
    for (let i = 0; i < n; i++) {
      if (view.getUint32(used + i * 8, true) >= size) return ST_BAD_ID;
    }
    for (let i = 0; i < n; i++) {
      const slot = usedOff + 4 + ((nextUsed + i) & mask) * 8;
      view.setUint32(slot, view.getUint32(used + i * 8, true), true);
      view.setUint32(slot + 4, view.getUint32(used + i * 8 + 4, true), true);
    }
    const newIdx = (nextUsed + n) & 0xffff;
    Atomics.store(words, (usedOff + 2) >>> 1, newIdx);
    view.setUint16(q + SQ_NEXT_USED, newIdx, true);
    if (features & SQ_FEATURE_EVENT_IDX) {
      const usedEvent = Atomics.load(words, (availOff + 4 + size * 2) >>> 1);
      const old = view.getUint16(q + SQ_SIGNALLED_USED, true);
      const flags = view.getUint16(q + SQ_FLAGS, true);
      view.setUint16(q + SQ_SIGNALLED_USED, newIdx, true);
      view.setUint16(q + SQ_FLAGS, flags | SQ_FLAG_SIGNALLED_VALID, true);
      if ((flags & SQ_FLAG_SIGNALLED_VALID) === 0) return 1;
      return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff) ? 1 : 0;
    }
    return (Atomics.load(words, availOff >>> 1) & VIRTQ_AVAIL_F_NO_INTERRUPT) !== 0 ? 0 : 1;
  }

  function splitEnableNotify(q: number): number {
    const size = view.getUint16(q + SQ_SIZE, true);
    const features = view.getUint16(q + SQ_FEATURES, true);
    const availOff = view.getUint32(q + SQ_AVAIL_OFF, true);
    const usedOff = view.getUint32(q + SQ_USED_OFF, true);
    const nextAvail = view.getUint16(q + SQ_NEXT_AVAIL, true);
    if (features & SQ_FEATURE_EVENT_IDX) Atomics.store(words, (usedOff + 4 + size * 8) >>> 1, nextAvail);
    else Atomics.store(words, usedOff >>> 1, 0);
    return Atomics.load(words, (availOff + 2) >>> 1) !== nextAvail ? 1 : 0;
  }

  function splitDisableNotify(q: number): number {
    const features = view.getUint16(q + SQ_FEATURES, true);
    const usedOff = view.getUint32(q + SQ_USED_OFF, true);
    if ((features & SQ_FEATURE_EVENT_IDX) === 0) Atomics.store(words, usedOff >>> 1, VIRTQ_USED_F_NO_NOTIFY);
    return 0;
  }

  return { splitPop, splitPushUsed, splitEnableNotify, splitDisableNotify };
}
