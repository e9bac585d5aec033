// Memory regions of one SoftRoce device: keys (KeyAllocator; lkey == rkey, as rxe does), their
// PD and rights, and the page tables that translate them. It is also the transport's memory port:
// every access by an SGE or an R_Key is checked here for key, PD, rights and bounds before the
// translation kernel (which checks rights and bounds again) turns it into memory segments.
// Every write into guest memory (receive and READ-response placement, RDMA WRITE, atomics, their
// original values) is marked in the device memory's dirty log (R4) by the segments' GPAs.
import { copyBytes } from '../../util/copy-bytes.js';
import { MR_NO_GPA_WORD, MR_SEGMENT_BYTES } from '../../../assembly/mr-abi.js';
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { KernelEngine } from '../../virtio/queue.js';
import type { KernelExports } from '../../wasm/loader.js';
import { VerbsError, VerbsErrorCode, invalid } from '../errors.js';
import { KeyAllocator } from '../ids.js';
import { MrError, MrErrorCode, MrTranslator, PageTable, type PageTableState, checkAccess } from '../mr/index.js';
import { NakCode } from '../roce/headers.js';
import type { MemoryPort, RemoteRegion } from '../roce/transport-qp.js';
import { Access, WcStatus } from '../types.js';
import type { MrKeys, PhysicalRegistration, Sge } from '../verbs.js';

export interface SoftMr {
  readonly key: number;
  readonly pd: number;
  readonly table: PageTable;
  live: boolean;
}

/** Bytes translated per kernel call: 64 KiB of 4 KiB pages fits the segment buffer many times. */
const CHUNK_BYTES = 64 * 1024;
const MAX_SEGMENTS = 256;

export class MrTable implements MemoryPort {
  private readonly keys: KeyAllocator;
  private readonly mrs = new Map<number, SoftMr>();
  private readonly translator: MrTranslator;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  private readonly words: BigUint64Array;

  constructor(private readonly dm: DeviceMemory, engine: KernelEngine, private readonly maxMr: number, private readonly maxMrBytes: number, kernels?: KernelExports) {
    this.keys = new KeyAllocator(maxMr);
    this.translator = MrTranslator.create(dm, engine, MAX_SEGMENTS, kernels);
    this.view = new DataView(dm.memory.buffer);
    this.bytes = new Uint8Array(dm.memory.buffer);
    this.words = new BigUint64Array(dm.memory.buffer);
  }

  get size(): number {
    return this.mrs.size;
  }

  countInPd(pd: number): number {
    let n = 0;
    for (const mr of this.mrs.values()) if (mr.pd === pd) n++;
    return n;
  }

  get(lkey: number): SoftMr {
    const mr = this.mrs.get(lkey >>> 0);
    if (mr === undefined) throw new VerbsError(VerbsErrorCode.NoSuchObject, `no MR with key 0x${(lkey >>> 0).toString(16)}`);
    return mr;
  }

  registerPhysical(pd: number, reg: PhysicalRegistration): MrKeys {
    const access = rights(reg.access);
    if (!(reg.length <= this.maxMrBytes)) throw invalid(`MR length ${reg.length} exceeds the device's ${this.maxMrBytes}`);
    return this.add(pd, () =>
      PageTable.physical(this.dm, { iova: reg.iova, length: reg.length, access, pageShift: reg.pageShift, pages: reg.pages }),
    );
  }

  registerAll(pd: number, access: number): MrKeys {
    const a = rights(access);
    return this.add(pd, () => PageTable.allMemory(this.dm, a));
  }

  reregister(lkey: number, reg: PhysicalRegistration | 'all-memory'): void {
    const mr = this.get(lkey);
    mrCall(() => {
      if (reg === 'all-memory') {
        if (mr.table.kind !== 'all-memory') throw invalid('a physical MR is reregistered with a page list');
        mr.table.rebuild();
      } else {
        if (mr.table.kind !== 'physical') throw invalid('an all-memory MR takes no page list');
        if (!(reg.length <= this.maxMrBytes)) throw invalid(`MR length ${reg.length} exceeds the device's ${this.maxMrBytes}`);
        mr.table.reregister({ iova: reg.iova, length: reg.length, access: rights(reg.access), pageShift: reg.pageShift, pages: reg.pages });
      }
    });
  }

  deregister(lkey: number): void {
    const mr = this.get(lkey);
    mr.live = false;
    this.mrs.delete(mr.key);
    this.keys.release(mr.key);
    mr.table.dispose();
  }

  // ---- saved state (R9) ---------------------------------------------------------------------

  /** Every MR, in key order. */
  list(): SoftMr[] {
    return [...this.mrs.values()].sort((a, b) => a.key - b.key);
  }

  keyState(): { cursor: number; tags: [number, number][] } {
    return this.keys.state();
  }

  get maxKeyIndex(): number {
    return this.keys.maxIndex;
  }

  /** Key tags and cursor as saved, on a table with no MRs. */
  restoreKeys(keys: { cursor: number; tags: readonly (readonly [number, number])[] }): void {
    if (this.mrs.size !== 0) throw new VerbsError(VerbsErrorCode.Busy, 'MRs are registered');
    this.keys.restoreState(keys);
  }

  /** Build a page table from a checked state; nothing is registered until install(). */
  buildTable(state: PageTableState): PageTable {
    return mrCall(() => PageTable.fromState(this.dm, state));
  }

  /**
   * Put restored MRs in place with their own keys, after the key tags: on a table with no MRs
   * (the caller checked the keys are distinct and agree with the tags).
   */
  install(keys: { cursor: number; tags: readonly (readonly [number, number])[] }, mrs: readonly { key: number; pd: number; table: PageTable }[]): void {
    this.restoreKeys(keys);
    for (const mr of mrs) {
      this.keys.reserve(mr.key);
      this.mrs.set(mr.key >>> 0, { key: mr.key >>> 0, pd: mr.pd, table: mr.table, live: true });
    }
  }

  dispose(): void {
    for (const mr of [...this.mrs.values()]) this.deregister(mr.key);
    this.translator.dispose();
  }

  // ---- MemoryPort ---------------------------------------------------------------------------

  checkSges(pd: number, sges: readonly Sge[], access: number): WcStatus {
    for (const sge of sges) {
      if (sge.length === 0) continue;
      const mr = this.mrs.get(sge.lkey >>> 0);
      if (mr === undefined || mr.pd !== pd || !within(mr.table, sge.addr, sge.length) || (mr.table.access & access) !== access) {
        return WcStatus.LocProtErr;
      }
    }
    return WcStatus.Success;
  }

  gather(pd: number, sges: readonly Sge[], offset: number, dst: Uint8Array, dstOff: number, len: number): boolean {
    return this.walk(pd, sges, offset, len, 0, (mr, iova, n, done) => this.copy(mr.table, iova, n, 0, dst, dstOff + done, false));
  }

  scatter(pd: number, sges: readonly Sge[], offset: number, src: Uint8Array, srcOff: number, len: number): boolean {
    return this.walk(pd, sges, offset, len, Access.LOCAL_WRITE, (mr, iova, n, done) => this.copy(mr.table, iova, n, Access.LOCAL_WRITE, src, srcOff + done, true));
  }

  remote(pd: number, rkey: number, va: bigint, len: number, access: number): RemoteRegion | NakCode {
    const mr = this.mrs.get(rkey >>> 0);
    if (mr === undefined || mr.pd !== pd || (mr.table.access & access) !== access) return NakCode.RemoteAccessError;
    if (va > BigInt(Number.MAX_SAFE_INTEGER) || !within(mr.table, Number(va), len)) return NakCode.RemoteAccessError;
    return mr;
  }

  remoteRead(region: RemoteRegion, va: bigint, dst: Uint8Array, dstOff: number, len: number): boolean {
    const mr = region as SoftMr;
    return mr.live && this.copy(mr.table, Number(va), len, Access.REMOTE_READ, dst, dstOff, false);
  }

  remoteWrite(region: RemoteRegion, va: bigint, src: Uint8Array, srcOff: number, len: number): boolean {
    const mr = region as SoftMr;
    return mr.live && this.copy(mr.table, Number(va), len, Access.REMOTE_WRITE, src, srcOff, true);
  }

  /**
   * Where an atomic at `va` through `region` lands: its byte offset in the device memory, or null
   * if the access is refused (the responder then NAKs it and nothing is written).
   */
  atomicTarget(region: RemoteRegion, va: bigint): number | null {
    const mr = region as SoftMr;
    if (!mr.live || (va & 7n) !== 0n) return null;
    const n = this.translator.raw(mr.table, Number(va), 8, Access.REMOTE_ATOMIC);
    if (n !== 1) return null;
    const off = this.view.getUint32(this.translator.outOff, true);
    // An aligned va is aligned in memory too (regions and pages keep 8-byte alignment); check
    // anyway, since an atomic access off alignment would trap.
    return off % 8 === 0 ? off : null;
  }

  /** The 64-bit word at byte offset `off` of the device memory (8-aligned), read atomically. */
  loadWord(off: number): bigint {
    return Atomics.load(this.words, off / 8);
  }

  remoteAtomic(region: RemoteRegion, va: bigint, add: boolean, compareAdd: bigint, swap: bigint): bigint | null {
    const off = this.atomicTarget(region, va);
    if (off === null) return null;
    // Real atomics on the shared memory: the guest's CPUs and other workers see them as such.
    const index = off / 8;
    const orig = add ? Atomics.add(this.words, index, compareAdd) : Atomics.compareExchange(this.words, index, compareAdd, swap);
    // A failed compare writes nothing, but marking it too is harmless and keeps this branch-free.
    const log = this.dm.dirtyLog;
    if (log.enabled) {
      const gpa = this.segmentGpa(0);
      if (gpa >= 0) log.mark(gpa, 8);
    }
    return orig;
  }

  // ---- internals ----------------------------------------------------------------------------

  /** GPA of segment `i` of the last translation, or -1 for the zero or sink page. */
  private segmentGpa(i: number): number {
    const s = this.translator.outOff + i * MR_SEGMENT_BYTES;
    const lo = this.view.getUint32(s + 8, true);
    const hi = this.view.getUint32(s + 12, true);
    if (lo === MR_NO_GPA_WORD >>> 0 && hi === MR_NO_GPA_WORD >>> 0) return -1;
    return lo + hi * 2 ** 32;
  }

  private add(pd: number, build: () => PageTable): MrKeys {
    if (this.mrs.size >= this.maxMr) throw new VerbsError(VerbsErrorCode.NoResources, `no more than ${this.maxMr} MRs`);
    const table = mrCall(build);
    let key: number;
    try {
      key = this.keys.allocate();
    } catch (err) {
      table.dispose();
      throw err;
    }
    this.mrs.set(key, { key, pd, table, live: true });
    return { lkey: key, rkey: key };
  }

  /** Run `each` over the SGE pieces covering message bytes [offset, offset+len). */
  private walk(pd: number, sges: readonly Sge[], offset: number, len: number, access: number, each: (mr: SoftMr, iova: number, n: number, done: number) => boolean): boolean {
    let skip = offset;
    let done = 0;
    for (const sge of sges) {
      if (done === len) break;
      if (skip >= sge.length) {
        skip -= sge.length;
        continue;
      }
      const n = Math.min(sge.length - skip, len - done);
      const mr = this.mrs.get(sge.lkey >>> 0);
      if (mr === undefined || mr.pd !== pd || (mr.table.access & access) !== access) return false;
      if (!each(mr, sge.addr + skip, n, done)) return false;
      done += n;
      skip = 0;
    }
    return done === len;
  }

  /** Copy between a buffer and the MR range [iova, iova+len) through the translation kernel. */
  private copy(table: PageTable, iova: number, len: number, access: number, buf: Uint8Array, bufOff: number, toMemory: boolean): boolean {
    const out = this.translator.outOff;
    const log = this.dm.dirtyLog;
    const logging = toMemory && log.enabled;
    let done = 0;
    while (done < len) {
      const chunk = Math.min(CHUNK_BYTES, len - done);
      const count = this.translator.raw(table, iova + done, chunk, access);
      if (count < 0) return false;
      let at = bufOff + done;
      for (let i = 0; i < count; i++) {
        const segOff = this.view.getUint32(out + i * MR_SEGMENT_BYTES, true);
        const segLen = this.view.getUint32(out + i * MR_SEGMENT_BYTES + 4, true);
        if (toMemory) copyBytes(buf, at, this.bytes, segOff, segLen);
        else copyBytes(this.bytes, segOff, buf, at, segLen);
        if (logging) {
          // Segments into an all-memory MR's sink page have no guest memory behind them.
          const gpa = this.segmentGpa(i);
          if (gpa >= 0) log.mark(gpa, segLen);
        }
        at += segLen;
      }
      done += chunk;
    }
    return true;
  }
}

function within(table: PageTable, iova: number, len: number): boolean {
  return Number.isSafeInteger(iova) && Number.isSafeInteger(len) && iova >= table.iova && len >= 0 && iova - table.iova + len <= table.length;
}

/** Registration rights; on-demand paging needs a fault path SoftRoce does not have yet. */
function rights(access: number): number {
  if (Number.isInteger(access) && (access & Access.ON_DEMAND) !== 0) {
    throw new VerbsError(VerbsErrorCode.NotSupported, 'on-demand paging is not supported by SoftRoce yet');
  }
  return mrCall(() => checkAccess(access));
}

/** Turn the MR layer's errors into the verbs layer's. */
function mrCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MrError) {
      const code = err.code === MrErrorCode.NoSpace ? VerbsErrorCode.NoResources : VerbsErrorCode.InvalidArgument;
      throw new VerbsError(code, err.message);
    }
    throw err;
  }
}
