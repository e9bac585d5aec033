// MrTranslator: run mrTranslate on either engine (the Wasm kernel or its TypeScript twin) into
// an output buffer of its own, and read the result back as segments or a fault. The verbs layer
// calls raw() on its hot path and reads segments in place (chain.ts format); translate() is the
// convenient form for the control path and tests.
import { MR_FAULT_BYTES, MR_NO_GPA_WORD, MR_SEGMENT_BYTES } from '../../../assembly/mr-abi.js';
import type { DeviceMemory } from '../../memory/device-memory.js';
import type { Gpa } from '../../memory/gpa.js';
import { type KernelExports, instantiateKernels } from '../../wasm/loader.js';
import { ST_PAGE_FAULT, statusName } from '../../wasm/status.js';
import type { KernelEngine } from '../../virtio/queue.js';
import type { PageTable } from './page-table.js';
import { type MrTranslateFn, MrTranslateTwin } from './translate-twin.js';

/** A piece of the translated range: `len` bytes at `offset` in the shared memory. */
export interface MrSegment {
  readonly offset: number;
  readonly len: number;
  /** Guest-physical address, or null for the zero or sink page of an all-memory MR. */
  readonly gpa: Gpa | null;
}

/** An ODP fault: the access must wait until the page at `iova` is made present. */
export interface MrFault {
  readonly iova: number;
  readonly page: number;
  readonly access: number;
}

export type MrTranslation =
  | { readonly ok: true; readonly segments: MrSegment[] }
  | { readonly ok: false; readonly status: number; readonly name: string; readonly fault: MrFault | null };

/** The mrTranslate of an engine, bound to a memory. */
export function mrTranslateFor(memory: WebAssembly.Memory, engine: KernelEngine, kernels?: KernelExports): MrTranslateFn {
  if (engine === 'ts') return new MrTranslateTwin(memory).mrTranslate;
  const exports = kernels ?? instantiateKernels(memory);
  return exports.mrTranslate as MrTranslateFn;
}

export class MrTranslator {
  /** The engine's translate function, for callers that manage their own output buffers. */
  readonly fn: MrTranslateFn;
  private readonly view: DataView;
  private released = false;

  private constructor(
    private readonly dm: DeviceMemory,
    readonly engine: KernelEngine,
    /** Output buffer: `outCap` segments at `outOff` in the shared memory. */
    readonly outOff: number,
    readonly outCap: number,
    kernels?: KernelExports,
  ) {
    this.fn = mrTranslateFor(dm.memory, engine, kernels);
    this.view = new DataView(dm.memory.buffer);
  }

  /** A translator with an output buffer of `maxSegments` segments in the device arena. */
  static create(dm: DeviceMemory, engine: KernelEngine, maxSegments = 256, kernels?: KernelExports): MrTranslator {
    if (!Number.isSafeInteger(maxSegments) || maxSegments < 1) throw new RangeError(`maxSegments must be a positive integer, got ${maxSegments}`);
    const bytes = Math.max(maxSegments * MR_SEGMENT_BYTES, MR_FAULT_BYTES);
    return new MrTranslator(dm, engine, dm.arena.alloc(bytes, 64), maxSegments, kernels);
  }

  /** Segment count or status; the segments are at outOff until the next call. */
  raw(table: PageTable | number, iova: number, len: number, access: number): number {
    return this.fn(typeof table === 'number' ? table : table.offset, iova, len, access, this.outOff, this.outCap);
  }

  translate(table: PageTable | number, iova: number, len: number, access: number): MrTranslation {
    const status = this.raw(table, iova, len, access);
    if (status < 0) {
      const fault = status === ST_PAGE_FAULT ? this.fault() : null;
      return { ok: false, status, name: statusName(status), fault };
    }
    const segments: MrSegment[] = [];
    for (let i = 0; i < status; i++) segments.push(this.segment(i));
    return { ok: true, segments };
  }

  /** Segment `i` of the last successful call. */
  segment(i: number): MrSegment {
    const v = this.view;
    const s = this.outOff + i * MR_SEGMENT_BYTES;
    const lo = v.getUint32(s + 8, true);
    const hi = v.getUint32(s + 12, true);
    const none = lo === MR_NO_GPA_WORD >>> 0 && hi === MR_NO_GPA_WORD >>> 0;
    return { offset: v.getUint32(s, true), len: v.getUint32(s + 4, true), gpa: none ? null : ((lo + hi * 2 ** 32) as Gpa) };
  }

  /** The fault record of the last call that returned ST_PAGE_FAULT. */
  fault(): MrFault {
    const v = this.view;
    return {
      iova: v.getUint32(this.outOff, true) + v.getUint32(this.outOff + 4, true) * 2 ** 32,
      page: v.getUint32(this.outOff + 8, true),
      access: v.getUint32(this.outOff + 12, true),
    };
  }

  /** Return the output buffer to the arena. */
  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.dm.arena.release(this.outOff);
  }
}
