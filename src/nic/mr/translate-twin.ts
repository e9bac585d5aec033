// The TypeScript twin of the mrTranslate kernel (assembly/mr.ts): the same signature, the same
// checks in the same order, the same segments and fault record, over the same shared memory.
// It is the oracle the kernel is tested against and the engine used where Wasm is unwanted.
//
// Numbers stand in for the kernel's u64s. Guest-facing values (iova, len) may be anything a
// double holds, so the rare cases beyond 2^53 take exact BigInt arithmetic; table fields are
// device-written and stay below 2^53.
import {
  MR_ACCESS_WRITES, MR_HEADER_BYTES, MR_H_ACCESS, MR_H_ENTRIES, MR_H_IOVA, MR_H_KIND, MR_H_LENGTH, MR_H_MAGIC,
  MR_H_PAGE_COUNT, MR_H_PAGE_SHIFT, MR_H_REGION_TABLE, MR_H_SINK_PAGE, MR_H_ZERO_PAGE, MR_KIND_ALL_MEMORY,
  MR_PTE_BYTES, MR_SEGMENT_BYTES, MR_TABLE_MAGIC,
} from '../../../assembly/mr-abi.js';
import { RegionTable } from '../../memory/region-table.js';
import { ST_ACCESS, ST_BAD_KEY, ST_NO_SPACE, ST_OUT_OF_RANGE, ST_OVERFLOW, ST_PAGE_FAULT } from '../../wasm/status.js';

/** The signature both engines share; see mrTranslate in assembly/mr.ts. */
export type MrTranslateFn = (table: number, iova: number, len: number, access: number, out: number, outCap: number) => number;

const TWO_POW_32 = 2 ** 32;
const TWO_POW_64 = 2 ** 64;
const TWO_POW_64_BIG = 1n << 64n;
const U32_MAX = TWO_POW_32 - 1;
const SUB_PAGE_BYTES = 4096;
const REGION_HEADER_BYTES = 16;
const REGION_ENTRY_BYTES = 32;

export class MrTranslateTwin {
  private readonly view: DataView;
  private readonly entries: BigUint64Array;
  /** Device memories are created at their final size and never grow, so this stays right. */
  private readonly memBytes: number;
  private regions: RegionTable | null = null;

  constructor(private readonly memory: WebAssembly.Memory) {
    this.view = new DataView(memory.buffer);
    this.entries = new BigUint64Array(memory.buffer);
    this.memBytes = memory.buffer.byteLength;
  }

  /** Same contract as the kernel: a segment count, or a status < 0. */
  readonly mrTranslate: MrTranslateFn = (tableIn, iova, len, accessIn, outIn, outCapIn) => {
    // Wasm receives i32 parameters through ToInt32; reading them as u32 gives the same bits.
    const table = tableIn >>> 0;
    const access = accessIn >>> 0;
    const out = outIn >>> 0;
    const outCap = outCapIn >>> 0;
    const v = this.view;
    const memBytes = this.memBytes;

    if (table % 8 !== 0 || table + MR_HEADER_BYTES > memBytes) return ST_BAD_KEY;
    if (v.getUint32(table + MR_H_MAGIC, true) !== MR_TABLE_MAGIC) return ST_BAD_KEY;
    const shift = v.getUint32(table + MR_H_PAGE_SHIFT, true);
    if (shift !== 12 && shift !== 21) return ST_BAD_KEY;
    const pageCount = v.getUint32(table + MR_H_PAGE_COUNT, true);
    const entries = v.getUint32(table + MR_H_ENTRIES, true);
    if (entries % 8 !== 0 || entries + pageCount * MR_PTE_BYTES > memBytes) return ST_BAD_KEY;
    const regionsOff = v.getUint32(table + MR_H_REGION_TABLE, true);
    if (regionsOff + REGION_HEADER_BYTES > memBytes) return ST_BAD_KEY;
    if (regionsOff + REGION_HEADER_BYTES + v.getUint32(regionsOff, true) * REGION_ENTRY_BYTES > memBytes) return ST_BAD_KEY;
    if (out + outCap * MR_SEGMENT_BYTES > memBytes) return ST_OVERFLOW;

    if (!(iova >= 0) || !(len >= 0) || iova >= TWO_POW_64 || len >= TWO_POW_64) return ST_OVERFLOW;
    if (Math.floor(iova) !== iova || Math.floor(len) !== len) return ST_OVERFLOW;

    if ((access & ~v.getUint32(table + MR_H_ACCESS, true)) !== 0) return ST_ACCESS;

    let end = iova + len;
    if (!Number.isSafeInteger(end)) {
      // Past 2^53 no MR reaches: either the u64 sum wraps, or the range is simply outside.
      return BigInt(iova) + BigInt(len) >= TWO_POW_64_BIG ? ST_OVERFLOW : ST_OUT_OF_RANGE;
    }
    const mrIova = getU64(v, table + MR_H_IOVA);
    const mrLen = getU64(v, table + MR_H_LENGTH);
    if (iova < mrIova || iova - mrIova > mrLen || len > mrLen - (iova - mrIova)) return ST_OUT_OF_RANGE;
    if (len === 0) return 0;

    const pageBytes = 2 ** shift;
    const base = mrIova - (mrIova % pageBytes);
    if (Math.floor((end - 1 - base) / pageBytes) >= pageCount) return ST_OUT_OF_RANGE;
    if (outCap === 0) return ST_NO_SPACE;

    const regions = this.regionTable(regionsOff);
    const allMemory = v.getUint32(table + MR_H_KIND, true) === MR_KIND_ALL_MEMORY;
    const throwAway = v.getUint32(table + ((access & MR_ACCESS_WRITES) !== 0 ? MR_H_SINK_PAGE : MR_H_ZERO_PAGE), true);
    const entryBase = entries / MR_PTE_BYTES;
    let count = 0;
    let cur = iova;
    end = iova + len;
    while (cur < end) {
      const rel = cur - base;
      const index = Math.floor(rel / pageBytes);
      const pte = Number(Atomics.load(this.entries, entryBase + index));
      const inPage = rel - index * pageBytes;
      const chunk = Math.min(pageBytes - inPage, end - cur);
      if (pte % 2 === 0) {
        setU64(v, out, cur);
        v.setUint32(out + 8, index, true);
        v.setUint32(out + 12, access, true);
        return ST_PAGE_FAULT;
      }
      const gpa = pte - (pte % pageBytes) + inPage;
      const off = regions.lookup(gpa, chunk);
      if (off >= 0) {
        count = this.emit(out, outCap, count, off, chunk, gpa);
        if (count < 0) return count;
      } else {
        // Not inside one region: resolve in 4 KiB pieces, each in one region or in none.
        const gEnd = gpa + chunk;
        for (let g = gpa; g < gEnd; ) {
          const piece = Math.min(SUB_PAGE_BYTES - (g % SUB_PAGE_BYTES), gEnd - g);
          const pieceOff = regions.lookup(g, piece);
          if (pieceOff >= 0) count = this.emit(out, outCap, count, pieceOff, piece, g);
          else if (allMemory) count = this.emit(out, outCap, count, throwAway + (g % pageBytes), piece, null);
          else return ST_OUT_OF_RANGE;
          if (count < 0) return count;
          g += piece;
        }
      }
      cur += chunk;
    }
    return count;
  };

  /** Append a segment (gpa null: the zero or sink page), merging as the kernel's emit does. */
  private emit(out: number, outCap: number, count: number, off: number, n: number, gpa: number | null): number {
    const v = this.view;
    if (count > 0) {
      const last = out + (count - 1) * MR_SEGMENT_BYTES;
      const lastOff = v.getUint32(last, true);
      const lastLen = v.getUint32(last + 4, true);
      const lastNoGpa = v.getUint32(last + 8, true) === U32_MAX && v.getUint32(last + 12, true) === U32_MAX;
      const sameKind = gpa === null ? lastNoGpa : !lastNoGpa && getU64(v, last + 8) + lastLen === gpa;
      if (sameKind && lastOff + lastLen === off && lastLen + n <= U32_MAX) {
        v.setUint32(last + 4, lastLen + n, true);
        return count;
      }
    }
    if (count >= outCap) return ST_NO_SPACE;
    const seg = out + count * MR_SEGMENT_BYTES;
    v.setUint32(seg, off, true);
    v.setUint32(seg + 4, n, true);
    if (gpa === null) {
      v.setUint32(seg + 8, U32_MAX, true);
      v.setUint32(seg + 12, U32_MAX, true);
    } else {
      setU64(v, seg + 8, gpa);
    }
    return count + 1;
  }

  private regionTable(off: number): RegionTable {
    if (this.regions === null || this.regions.tableOff !== off) this.regions = new RegionTable(this.memory.buffer, off);
    return this.regions;
  }
}

function getU64(view: DataView, off: number): number {
  return view.getUint32(off, true) + view.getUint32(off + 4, true) * TWO_POW_32;
}

function setU64(view: DataView, off: number, value: number): void {
  view.setUint32(off, value % TWO_POW_32, true);
  view.setUint32(off + 4, Math.floor(value / TWO_POW_32), true);
}
