// Hostile split rings for the property tests and the fuzzer: a device memory with two guest
// regions (one above 4 GiB), rings built by the guest driver library, then corrupted at random:
// flags, next links, loops, addresses outside memory or overflowing, lengths, indirect tables
// (nested, bad length), avail entries and avail idx jumps, 16-bit index wrap.
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { SplitRingDriver, type GuestBuffer } from '../../src/guest/split-ring.js';
import { DESC_BYTES, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/virtio/split-block.js';
import type { SplitQueueState } from '../../src/virtio/split-queue.js';

export const MiB = 1024 * 1024;
/** Region A: guest-physical [0, 2 MiB). Rings and tables live in its first MiB. */
export const REGION_A = 0;
/** Region B: guest-physical [4 GiB, 4 GiB + 2 MiB), like a VM's high memory. */
export const REGION_B = 2 ** 32;
export const REGION_BYTES = 2 * MiB;
/** Rings and indirect tables are allocated in [RING_AREA, DATA_AREA); data buffers above. */
export const RING_AREA = 0x10000;
export const DATA_AREA = 0x100000;

/** A device memory whose RAM window is exactly the two regions (so nothing else is guest). */
export function hostileMemory(): DeviceMemory {
  const dm = DeviceMemory.create({ ramBytes: 2 * REGION_BYTES, arenaBytes: 256 * 1024 });
  dm.addRegion(REGION_A, REGION_BYTES);
  dm.addRegion(REGION_B, REGION_BYTES);
  return dm;
}

/** A small fast PRNG (mulberry32); returns integers in [0, 2^32). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export type Rng = () => number;
const below = (rng: Rng, n: number): number => rng() % n;

function dataBuffer(rng: Rng): GuestBuffer {
  const len = below(rng, 8) === 0 ? 0 : 1 + below(rng, 2048);
  if (below(rng, 3) === 0) return { gpa: REGION_B + below(rng, REGION_BYTES - len), len };
  return { gpa: DATA_AREA + below(rng, REGION_BYTES - DATA_AREA - len), len };
}

/** Addresses (as 32-bit halves) and lengths a hostile guest likes. */
function hostileAddress(rng: Rng): [lo: number, hi: number, len: number] {
  switch (below(rng, 8)) {
    case 0: return [REGION_BYTES - below(rng, 64), 0, 64 + below(rng, 64)]; // runs off region A
    case 1: return [REGION_BYTES + below(rng, MiB), 0, 1 + below(rng, 64)]; // the hole after A
    case 2: return [0xfffff000 + below(rng, 0x1000), 0xffffffff, 0x1000 + below(rng, 0x1000)]; // wraps 2^64
    case 3: return [rng(), 0x200000 + below(rng, 0xffdfffff), 1 + below(rng, 64)]; // at or above 2^53
    case 4: return [REGION_BYTES - 16, 1, 32]; // runs off region B
    case 5: return [below(rng, REGION_BYTES), 0, 0xffffffff - below(rng, 4)]; // huge length
    case 6: return [RING_AREA + below(rng, 0x1000), 0, 16 * (1 + below(rng, 4))]; // points at the rings
    default: return [rng(), rng(), rng()];
  }
}

/**
 * Build a ring in `dm` with the driver library, then corrupt it `corruptions` times. Returns
 * the device state to build a queue from. The same rng sequence gives the same ring.
 */
export function buildHostileRing(dm: DeviceMemory, rng: Rng, corruptions = below(rng, 4)): SplitQueueState {
  const size = 1 << below(rng, 9);
  const alloc = new Arena(RING_AREA, DATA_AREA - RING_AREA);
  const driver = SplitRingDriver.create<number>(dm.guest, alloc, { size, eventIdx: below(rng, 2) === 0, indirectDesc: true });
  const chains = below(rng, size + 1);
  for (let c = 0; c < chains; c++) {
    const n = 1 + below(rng, Math.min(6, size));
    const reads = below(rng, n + 1);
    const bufs = Array.from({ length: n }, () => dataBuffer(rng));
    if (driver.add(bufs.slice(0, reads), bufs.slice(reads), c, below(rng, 4) === 0) < 0) break;
  }
  driver.publish();
  const state = driver.initialDeviceState();
  const g = dm.guest;
  // Random notification words: used_event, avail flags.
  g.writeU16(gpa(state.availGpa + 4 + 2 * size), rng() & 0xffff);
  if (below(rng, 4) === 0) g.writeU16(gpa(state.availGpa), rng() & 1);
  if (below(rng, 2) === 0) rebase(dm, state, below(rng, 2) === 0 ? 0xffff - below(rng, size + 2) : rng() & 0xffff);
  for (let i = 0; i < corruptions; i++) corrupt(dm, state, rng);
  return state;
}

/** Move the offered entries so the indices start at `base` (exercises the 16-bit wrap). */
function rebase(dm: DeviceMemory, state: SplitQueueState, base: number): void {
  const g = dm.guest;
  const { size } = state;
  const count = g.readU16(gpa(state.availGpa + 2));
  const heads = Array.from({ length: count }, (_, i) => g.readU16(gpa(state.availGpa + 4 + 2 * i)));
  heads.forEach((h, i) => g.writeU16(gpa(state.availGpa + 4 + 2 * ((base + i) & (size - 1))), h));
  g.writeU16(gpa(state.availGpa + 2), (base + count) & 0xffff);
  g.writeU16(gpa(state.usedGpa + 2), base);
  state.nextAvail = base;
  state.nextUsed = base;
}

function descAt(dm: DeviceMemory, state: SplitQueueState, rng: Rng): number {
  // Half the time a descriptor of an indirect table, when the ring has one.
  const g = dm.guest;
  if (below(rng, 2) === 0) {
    for (let tries = 0; tries < 4; tries++) {
      const d = state.descGpa + DESC_BYTES * below(rng, state.size);
      if (g.readU16(gpa(d + 12)) & VIRTQ_DESC_F_INDIRECT) {
        const table = g.readU32(gpa(d)) + g.readU32(gpa(d + 4)) * 2 ** 32;
        const entries = Math.floor(g.readU32(gpa(d + 8)) / DESC_BYTES);
        if (entries > 0 && g.tryTranslate(table, entries * DESC_BYTES) >= 0) return table + DESC_BYTES * below(rng, entries);
      }
    }
  }
  return state.descGpa + DESC_BYTES * below(rng, state.size);
}

function corrupt(dm: DeviceMemory, state: SplitQueueState, rng: Rng): void {
  const g = dm.guest;
  const d = gpa(descAt(dm, state, rng));
  const avail = state.availGpa;
  switch (below(rng, 10)) {
    case 0: // flip NEXT / WRITE / INDIRECT
      g.writeU16(gpa(d + 12), g.readU16(gpa(d + 12)) ^ [VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT][below(rng, 3)]);
      break;
    case 1: // a next link anywhere (loops, out of the table)
      g.writeU16(gpa(d + 14), below(rng, 2) === 0 ? below(rng, state.size) : rng() & 0xffff);
      g.writeU16(gpa(d + 12), g.readU16(gpa(d + 12)) | VIRTQ_DESC_F_NEXT);
      break;
    case 2: { // hostile address and length
      const [lo, hi, len] = hostileAddress(rng);
      g.writeU32(gpa(d), lo);
      g.writeU32(gpa(d + 4), hi);
      g.writeU32(gpa(d + 8), len);
      break;
    }
    case 3: // an odd length (bad indirect table length when INDIRECT)
      g.writeU32(gpa(d + 8), [0, 8, 24, 17, 0xfffffff0][below(rng, 5)]);
      break;
    case 4: // an avail entry naming anything
      g.writeU16(gpa(avail + 4 + 2 * below(rng, state.size)), below(rng, 2) === 0 ? rng() & 0xffff : below(rng, state.size));
      break;
    case 5: // avail idx jumps, or moves by any amount
      g.writeU16(gpa(avail + 2), below(rng, 2) === 0 ? (state.nextAvail + state.size + 1 + below(rng, 100)) & 0xffff : rng() & 0xffff);
      break;
    case 6: // a whole random descriptor
      for (let i = 0; i < 16; i += 4) g.writeU32(gpa(d + i), rng());
      break;
    case 7: // a loop back to the start of its table
      g.writeU16(gpa(d + 12), VIRTQ_DESC_F_NEXT | (rng() & VIRTQ_DESC_F_WRITE));
      g.writeU16(gpa(d + 14), 0);
      break;
    case 8: // an indirect descriptor, maybe inside a table (nested)
      g.writeU16(gpa(d + 12), VIRTQ_DESC_F_INDIRECT | (rng() & 3));
      break;
    default: // readable after writable
      g.writeU16(gpa(d + 12), (g.readU16(gpa(d + 12)) & ~VIRTQ_DESC_F_WRITE) | VIRTQ_DESC_F_NEXT);
      break;
  }
}
