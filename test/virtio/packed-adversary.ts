// Adversarial packed rings for property tests and the fuzzer. A scenario is a pure function of
// a seed: the guest driver library lays out a ring and makes random chains available (direct and
// indirect, with addresses at region edges, in the hole, above 4 GiB), then random corruptions hit
// descriptor and indirect table bytes, and the device runs pops, pushes and notification calls.
// Running one seed on two rigs (Wasm and twin) must give identical traces and memory.
import * as L from '../../assembly/packed-layout.js';
import { type GuestBuffer, PackedDriver } from '../../src/guest/packed-ring.js';
import { VirtioError } from '../../src/virtio/errors.js';
import type { PackedKernels } from '../../src/virtio/packed-kernels.js';
import { PackedQueue } from '../../src/virtio/packed-queue.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import { statusName } from '../../src/wasm/status.js';
import { HIGH_BYTES, HIGH_GPA, LOW_BYTES, LOW_GPA, type Rig } from './packed-fixture.js';

/** A small deterministic PRNG (xorshift32). */
export class Rnd {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** 0..n-1 */
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const SIZES = [1, 2, 3, 4, 5, 8, 16, 31, 64, 256];

/** A buffer address and length: mostly valid, sometimes (odds 1 in `edgeOdds`) at or past an edge. */
function buffer(rnd: Rnd, edgeOdds: number): GuestBuffer {
  const len = rnd.chance(0.1) ? 0 : 1 + rnd.int(rnd.chance(0.8) ? 64 : 4096);
  switch (rnd.int(edgeOdds)) {
    case 0:
      return { gpa: HIGH_GPA + rnd.int(HIGH_BYTES - len + 1), len };
    case 1: // touching or crossing the low region's end
      return { gpa: LOW_GPA + LOW_BYTES - len + rnd.int(3) - 1 + 1, len: len || 1 };
    case 2: // in the hole between the regions, or past the high one
      return { gpa: rnd.chance(0.5) ? LOW_BYTES + rnd.int(1 << 20) : HIGH_GPA + HIGH_BYTES + rnd.int(4096), len: len || 1 };
    default:
      return { gpa: LOW_GPA + LOW_BYTES / 2 + rnd.int(LOW_BYTES / 2 - 4096), len };
  }
}

const LEN_VALUES = [0, 1, 15, 16, 17, 32, 48, 4096, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff];
const HI_VALUES = [0, 0, 1, 0x1fffff, 0x200000, 0xffffffff];

/** One random corruption of a ring descriptor or indirect table entry at memory offset `d`. */
function corruptDesc(view: DataView, d: number, rnd: Rnd, size: number): void {
  switch (rnd.int(9)) {
    case 0:
      view.setUint16(d + L.PDESC_FLAGS, view.getUint16(d + L.PDESC_FLAGS, true) ^ (1 << rnd.int(16)), true);
      break;
    case 1:
      view.setUint16(d + L.PDESC_FLAGS, rnd.u32() & 0xffff, true);
      break;
    case 2: // toggle one of the meaningful flags
      view.setUint16(d + L.PDESC_FLAGS, view.getUint16(d + L.PDESC_FLAGS, true) ^ rnd.pick([1, 2, 4, 0x80, 0x8000, 0x8080]), true);
      break;
    case 3:
      view.setUint32(d + L.PDESC_LEN, rnd.pick(LEN_VALUES), true);
      break;
    case 4:
      view.setUint32(d + L.PDESC_LEN, rnd.u32(), true);
      break;
    case 5:
      view.setUint32(d + L.PDESC_ADDR, rnd.u32(), true);
      view.setUint32(d + L.PDESC_ADDR + 4, rnd.pick(HI_VALUES), true);
      break;
    case 6: // an address just past or just before a region end
      view.setUint32(d + L.PDESC_ADDR, (rnd.chance(0.5) ? LOW_BYTES : HIGH_BYTES) - rnd.int(64), true);
      view.setUint32(d + L.PDESC_ADDR + 4, rnd.chance(0.5) ? 0 : 1, true);
      break;
    case 7:
      view.setUint16(d + L.PDESC_ID, rnd.chance(0.5) ? rnd.int(size) : rnd.u32() & 0xffff, true);
      break;
    default: // a raw byte
      view.setUint8(d + rnd.int(16), rnd.u32() & 0xff);
  }
}

export interface ScenarioResult {
  /** Return values and statuses, in order, for comparing engines. */
  trace: number[];
  /** Status names of the VirtioErrors raised (one per scenario at most). */
  errors: string[];
  queue: PackedQueue;
  driver: PackedDriver;
}

/**
 * Build and run one adversarial scenario on `rig` with `engine`'s `kernels`. Throws only what the
 * code under test throws that is not a VirtioError.
 */
export function runScenario(rig: Rig, seed: number, engine: KernelEngine, kernels: PackedKernels): ScenarioResult {
  const rnd = new Rnd(seed);
  const size = rnd.pick(SIZES);
  const eventIdx = rnd.chance(0.5);
  const indirect = rnd.chance(0.7);
  // Most scenarios keep buffer addresses sane so that the ring corruptions decide the outcome.
  const edgeOdds = rnd.chance(0.3) ? 10 : 400;
  const driver = new PackedDriver(rig.dm.guest, rig.ram, { size, eventIdx, indirect });
  const queue = PackedQueue.fromState(rig.dm, driver.deviceState(), engine, kernels);
  const trace: number[] = [];
  const errors: string[] = [];
  const view = new DataView(rig.dm.memory.buffer);
  const ringOff = rig.dm.guest.translate(driver.descGpa, size * L.PDESC_BYTES);
  const h = queue.handle();

  const fill = (count: number) => {
    for (let i = 0; i < count; i++) {
      const n = 1 + rnd.int(Math.min(size, rnd.chance(0.8) ? 4 : 40));
      const readable: GuestBuffer[] = [];
      const writable: GuestBuffer[] = [];
      const nr = rnd.int(n + 1);
      for (let j = 0; j < n; j++) (j < nr ? readable : writable).push(buffer(rnd, edgeOdds));
      const id = driver.add(readable, writable, indirect && rnd.chance(0.3));
      trace.push(id ?? -1);
      if (id === null) break;
    }
  };

  try {
    // Warm up with legal traffic so positions and wrap counters start anywhere.
    for (let lap = rnd.int(3); lap > 0; lap--) {
      fill(1 + rnd.int(size));
      const chains = queue.pop();
      for (const c of chains) queue.addUsed(c, 0);
      trace.push(chains.length, queue.flush() ? 1 : 0);
      trace.push(driver.collectUsed().length);
    }
    // Hostile part: fill, corrupt, run the device.
    fill(1 + rnd.int(size));
    for (let c = rnd.int(4) === 0 ? 0 : 1 + rnd.int(4); c > 0; c--) {
      const d = ringOff + rnd.int(size) * L.PDESC_BYTES;
      const flags = view.getUint16(d + L.PDESC_FLAGS, true);
      // Half the time hit an indirect table the ring points at, if it is in guest memory.
      if ((flags & L.VIRTQ_DESC_F_INDIRECT) !== 0 && rnd.chance(0.5)) {
        const lo = view.getUint32(d, true);
        const hi = view.getUint32(d + 4, true);
        const len = view.getUint32(d + L.PDESC_LEN, true);
        const t = hi < 0x200000 && len >= 16 ? rig.dm.guest.tryTranslate(hi * 2 ** 32 + lo, len) : -1;
        if (t >= 0) {
          corruptDesc(view, t + rnd.int(len >>> 4) * L.PDESC_BYTES, rnd, size);
          continue;
        }
      }
      corruptDesc(view, d, rnd, size);
    }
    for (let step = 1 + rnd.int(4); step > 0; step--) {
      switch (rnd.int(6)) {
        case 0: {
          // Straight to the kernel with a record buffer that may be too small.
          const outBytes = rnd.chance(0.5) ? 16 + rnd.int(Math.min(200, h.recordBytes - 15)) : h.recordBytes;
          const r = kernels.packedPop(h.blockOff, h.recordOff, outBytes, 1 + rnd.int(size + 2));
          trace.push(r);
          if (r < 0) {
            errors.push(statusName(r));
            return { trace, errors, queue, driver };
          }
          break;
        }
        case 1:
          trace.push(queue.enableNotification() ? 1 : 0);
          break;
        case 2:
          queue.disableNotification();
          break;
        case 3:
          if (rnd.chance(0.5)) driver.disableUsedNotify();
          else trace.push(driver.enableUsedNotify(rnd.int(size)) ? 1 : 0);
          break;
        default: {
          const chains = queue.pop(1 + rnd.int(size + 1));
          trace.push(chains.length);
          const order = chains.map((_, i) => i);
          for (let i = order.length - 1; i > 0; i--) {
            const j = rnd.int(i + 1);
            [order[i], order[j]] = [order[j], order[i]];
          }
          for (const i of order.slice(0, rnd.int(order.length + 1))) {
            const c = chains[i];
            trace.push(c.id, c.descCount, c.readSegments, c.writeSegments, c.readBytes, c.writeBytes);
            queue.addUsed(c, rnd.int(c.writeBytes + 1));
          }
          trace.push(queue.flush() ? 1 : 0);
          // The driver collects what it can; a hostile ring may confuse it (that is its problem).
          try {
            trace.push(driver.collectUsed().length);
          } catch (e) {
            if (!(e instanceof VirtioError)) throw e;
            trace.push(-100);
          }
        }
      }
    }
  } catch (e) {
    if (!(e instanceof VirtioError)) throw e;
    errors.push(statusName(e.status));
    trace.push(e.status);
  }
  return { trace, errors, queue, driver };
}
