// The TypeScript twin of assembly/packed-ring.ts: the same kernels, step for step (same checks in
// the same order), over the same shared memory. It is the test oracle for the Wasm kernels and
// the benchmark baseline. The rules for hostile rings are documented in the Wasm file.
import { CHAIN_HEADER_BYTES, SEGMENT_BYTES, writeChainHeader, writeSegment } from './chain.js';
import * as L from '../../assembly/packed-layout.js';
import { RegionTable } from '../memory/region-table.js';
import {
  ST_AVAIL_JUMP,
  ST_BAD_ID,
  ST_BAD_INDIRECT_LEN,
  ST_CHAIN_TOO_LONG,
  ST_LOOP,
  ST_NESTED_INDIRECT,
  ST_NO_SPACE,
  ST_OUT_OF_RANGE,
  ST_OVERFLOW,
  ST_READ_AFTER_WRITE,
} from '../wasm/status.js';
import type { PackedKernels } from './packed-kernels.js';

const U32_MAX = 0xffffffff;
/** High word of the first u64 at or above 2^53: no region reaches that far (gpa.ts). */
const HI_2_53 = 0x200000;

function isAvail(flags: number, wrap: number): boolean {
  return ((flags >> 7) & 1) === wrap && ((flags >> 15) & 1) !== wrap;
}

function ringPos(slot: number, wrap: number, size: number): number {
  return wrap !== 0 ? slot : slot + size;
}

export class PackedTwin implements PackedKernels {
  private readonly dv: DataView;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private regions: RegionTable | undefined;

  constructor(readonly memory: WebAssembly.Memory) {
    this.dv = new DataView(memory.buffer);
    this.u16 = new Uint16Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
  }

  private table(off: number): RegionTable {
    if (this.regions === undefined || this.regions.tableOff !== off) this.regions = new RegionTable(this.memory.buffer, off);
    return this.regions;
  }

  /** Offset of guest [hi:lo, +len), or ST_OVERFLOW / ST_OUT_OF_RANGE — as the Wasm translate(). */
  private translate(table: RegionTable, lo: number, hi: number, len: number): number {
    if (hi === U32_MAX && lo + len > U32_MAX) return ST_OVERFLOW;
    // regionLookup finds every address at or above 2^53 outside all regions; numbers stay exact.
    if (hi >= HI_2_53) return ST_OUT_OF_RANGE;
    return table.lookup(hi * 2 ** 32 + lo, len);
  }

  private popOne(ring: number, size: number, features: number, table: RegionTable, room: number, slot: number, wrap: number, rec: number, recEnd: number): number {
    const dv = this.dv;
    let d = ring + slot * L.PDESC_BYTES;
    let flags = Atomics.load(this.u16, (d + L.PDESC_FLAGS) >>> 1);
    if (!isAvail(flags, wrap)) return 0;
    if (room === 0) return ST_AVAIL_JUMP;
    if (rec + CHAIN_HEADER_BYTES > recEnd) return ST_NO_SPACE;
    let seg = rec + CHAIN_HEADER_BYTES;
    let readSegs = 0;
    let writeSegs = 0;
    let readBytes = 0;
    let writeBytes = 0;
    let seenWrite = false;
    let descCount = 1;
    let id = 0;
    let tableLeft = 0;
    while (true) {
      if (tableLeft === 0) {
        id = dv.getUint16(d + L.PDESC_ID, true);
        if (flags & L.VIRTQ_DESC_F_INDIRECT) {
          if (descCount > 1 || (flags & L.VIRTQ_DESC_F_NEXT) !== 0 || (features & L.PQ_FEATURE_INDIRECT) === 0) return ST_NESTED_INDIRECT;
          const tableLen = dv.getUint32(d + L.PDESC_LEN, true);
          if (tableLen === 0 || (tableLen & 15) !== 0) return ST_BAD_INDIRECT_LEN;
          const entries = tableLen >>> 4;
          if (entries > size) return ST_LOOP;
          const tableOff = this.translate(table, dv.getUint32(d, true), dv.getUint32(d + 4, true), tableLen);
          if (tableOff < 0) return tableOff;
          d = tableOff;
          tableLeft = entries;
          flags = dv.getUint16(d + L.PDESC_FLAGS, true);
        }
      }
      if (tableLeft !== 0 && (flags & L.VIRTQ_DESC_F_INDIRECT) !== 0) return ST_NESTED_INDIRECT;

      const len = dv.getUint32(d + L.PDESC_LEN, true);
      const isWrite = (flags & L.VIRTQ_DESC_F_WRITE) !== 0;
      if (isWrite) seenWrite = true;
      else if (seenWrite) return ST_READ_AFTER_WRITE;
      if (readBytes + writeBytes + len > U32_MAX) return ST_CHAIN_TOO_LONG;
      if (len !== 0) {
        const lo = dv.getUint32(d, true);
        const hi = dv.getUint32(d + 4, true);
        const off = this.translate(table, lo, hi, len);
        if (off < 0) return off;
        if (seg + SEGMENT_BYTES > recEnd) return ST_NO_SPACE;
        writeSegment(dv, seg, off, len, lo, hi);
        seg += SEGMENT_BYTES;
        if (isWrite) {
          writeSegs++;
          writeBytes += len;
        } else {
          readSegs++;
          readBytes += len;
        }
      }

      if (tableLeft !== 0) {
        if (--tableLeft === 0) break;
        d += L.PDESC_BYTES;
        flags = dv.getUint16(d + L.PDESC_FLAGS, true);
        continue;
      }
      if ((flags & L.VIRTQ_DESC_F_NEXT) === 0) break;
      if (++slot === size) {
        slot = 0;
        wrap ^= 1;
      }
      descCount++;
      if (descCount > size) return ST_LOOP;
      if (descCount > room) return ST_AVAIL_JUMP;
      d = ring + slot * L.PDESC_BYTES;
      flags = dv.getUint16(d + L.PDESC_FLAGS, true);
      if (!isAvail(flags, wrap)) return ST_AVAIL_JUMP;
    }
    writeChainHeader(dv, rec, id, descCount, readSegs, writeSegs, readBytes, writeBytes);
    return seg - rec;
  }

  packedPop(q: number, out: number, outBytes: number, maxChains: number): number {
    const dv = this.dv;
    const size = dv.getUint32(q + L.PQ_SIZE, true);
    const features = dv.getUint32(q + L.PQ_FEATURES, true);
    const ring = dv.getUint32(q + L.PQ_DESC_OFF, true);
    const table = this.table(dv.getUint32(q + L.PQ_REGION_TABLE_OFF, true));
    let slot = dv.getUint16(q + L.PQ_NEXT_AVAIL, true);
    let wrap = dv.getUint16(q + L.PQ_AVAIL_WRAP, true);
    let inflight = dv.getUint32(q + L.PQ_INFLIGHT, true);
    const recEnd = out + outBytes;
    let rec = out;
    let count = 0;
    let result = 0;
    while (count < maxChains) {
      const r = this.popOne(ring, size, features, table, size - inflight, slot, wrap, rec, recEnd);
      if (r === 0) break;
      if (r < 0) {
        result = r === ST_NO_SPACE && count > 0 ? 0 : r;
        break;
      }
      const descCount = dv.getUint16(rec + 2, true);
      slot += descCount;
      if (slot >= size) {
        slot -= size;
        wrap ^= 1;
      }
      inflight += descCount;
      rec += r;
      count++;
    }
    dv.setUint16(q + L.PQ_NEXT_AVAIL, slot, true);
    dv.setUint16(q + L.PQ_AVAIL_WRAP, wrap, true);
    dv.setUint32(q + L.PQ_INFLIGHT, inflight, true);
    return result < 0 ? result : count;
  }

  packedPushUsed(q: number, used: number, n: number): number {
    if (n === 0) return 0;
    const dv = this.dv;
    const size = dv.getUint32(q + L.PQ_SIZE, true);
    const ring = dv.getUint32(q + L.PQ_DESC_OFF, true);
    const inflight = dv.getUint32(q + L.PQ_INFLIGHT, true);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const dc = dv.getUint16(used + i * L.PUSED_BYTES + L.PUSED_DESC_COUNT, true);
      if (dc === 0 || dc > inflight - total) return ST_BAD_ID;
      total += dc;
    }
    let slot = dv.getUint16(q + L.PQ_NEXT_USED, true);
    let wrap = dv.getUint16(q + L.PQ_USED_WRAP, true);
    let firstDesc = 0;
    let firstFlags = 0;
    for (let i = 0; i < n; i++) {
      const u = used + i * L.PUSED_BYTES;
      const len = dv.getUint32(u + L.PUSED_LEN, true);
      const d = ring + slot * L.PDESC_BYTES;
      dv.setUint32(d + L.PDESC_LEN, len, true);
      dv.setUint16(d + L.PDESC_ID, dv.getUint16(u + L.PUSED_ID, true), true);
      let flags = wrap !== 0 ? L.VIRTQ_DESC_F_AVAIL | L.VIRTQ_DESC_F_USED : 0;
      if (len !== 0) flags |= L.VIRTQ_DESC_F_WRITE;
      if (i === 0) {
        firstDesc = d;
        firstFlags = flags;
      } else {
        Atomics.store(this.u16, (d + L.PDESC_FLAGS) >>> 1, flags);
      }
      slot += dv.getUint16(u + L.PUSED_DESC_COUNT, true);
      if (slot >= size) {
        slot -= size;
        wrap ^= 1;
      }
    }
    Atomics.store(this.u16, (firstDesc + L.PDESC_FLAGS) >>> 1, firstFlags);
    dv.setUint16(q + L.PQ_NEXT_USED, slot, true);
    dv.setUint16(q + L.PQ_USED_WRAP, wrap, true);
    dv.setUint32(q + L.PQ_INFLIGHT, inflight - total, true);
    return this.needsNotify(q, size, slot, wrap);
  }

  private needsNotify(q: number, size: number, slot: number, wrap: number): number {
    const dv = this.dv;
    const oldPos = ringPos(dv.getUint16(q + L.PQ_SIGNAL_SLOT, true), dv.getUint16(q + L.PQ_SIGNAL_WRAP, true), size);
    const valid = dv.getUint32(q + L.PQ_SIGNAL_VALID, true);
    dv.setUint16(q + L.PQ_SIGNAL_SLOT, slot, true);
    dv.setUint16(q + L.PQ_SIGNAL_WRAP, wrap, true);
    dv.setUint32(q + L.PQ_SIGNAL_VALID, 1, true);
    const event = Atomics.load(this.u32, dv.getUint32(q + L.PQ_DRIVER_EVENT_OFF, true) >>> 2);
    const mode = (event >>> 16) & 3;
    if (mode === L.RING_EVENT_FLAGS_DISABLE) return 0;
    if (mode !== L.RING_EVENT_FLAGS_DESC || (dv.getUint32(q + L.PQ_FEATURES, true) & L.PQ_FEATURE_EVENT_IDX) === 0) return 1;
    if (valid === 0) return 1;
    const off = event & 0x7fff;
    if (off >= size) return 0;
    const cycle = size * 2;
    const newPos = ringPos(slot, wrap, size);
    const eventPos = ringPos(off, (event >>> 15) & 1, size);
    const sinceOld = (newPos + cycle - oldPos) % cycle;
    const toEvent = (eventPos + cycle - oldPos) % cycle;
    return toEvent < sinceOld ? 1 : 0;
  }

  packedEnableNotify(q: number): number {
    const dv = this.dv;
    const slot = dv.getUint16(q + L.PQ_NEXT_AVAIL, true);
    const wrap = dv.getUint16(q + L.PQ_AVAIL_WRAP, true);
    const value =
      (dv.getUint32(q + L.PQ_FEATURES, true) & L.PQ_FEATURE_EVENT_IDX) !== 0
        ? ((L.RING_EVENT_FLAGS_DESC << 16) | (wrap << 15) | slot) >>> 0
        : L.RING_EVENT_FLAGS_ENABLE << 16;
    Atomics.store(this.u32, dv.getUint32(q + L.PQ_DEVICE_EVENT_OFF, true) >>> 2, value);
    const d = dv.getUint32(q + L.PQ_DESC_OFF, true) + slot * L.PDESC_BYTES;
    return isAvail(Atomics.load(this.u16, (d + L.PDESC_FLAGS) >>> 1), wrap) ? 1 : 0;
  }

  packedDisableNotify(q: number): number {
    Atomics.store(this.u32, this.dv.getUint32(q + L.PQ_DEVICE_EVENT_OFF, true) >>> 2, L.RING_EVENT_FLAGS_DISABLE << 16);
    return 0;
  }
}
