import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as L from '../../assembly/packed-layout.js';
import { PackedDriver } from '../../src/guest/packed-ring.js';
import { gpa } from '../../src/memory/gpa.js';
import { VirtioError } from '../../src/virtio/errors.js';
import { packedKernels } from '../../src/virtio/packed-kernels.js';
import { PackedQueue, type PackedQueueState } from '../../src/virtio/packed-queue.js';
import type { KernelEngine } from '../../src/virtio/queue.js';
import * as S from '../../src/wasm/status.js';
import { HIGH_GPA, LOW_BYTES, type Rig, allowedRanges, makeRig, makeRing, plantCanaries } from './packed-fixture.js';

interface RawDesc {
  addr?: number | bigint;
  len?: number;
  id?: number;
  /** NEXT / WRITE / INDIRECT; AVAIL and USED come from `wrap` unless `raw` is set. */
  flags?: number;
  wrap?: number;
  raw?: boolean;
}

/** Write a descriptor as a (possibly hostile) driver would, at `off` in the memory. */
function putDesc(rig: Rig, off: number, d: RawDesc): void {
  const v = new DataView(rig.dm.memory.buffer);
  v.setBigUint64(off + L.PDESC_ADDR, BigInt(d.addr ?? LOW_BYTES / 2), true);
  v.setUint32(off + L.PDESC_LEN, d.len ?? 64, true);
  v.setUint16(off + L.PDESC_ID, d.id ?? 0, true);
  const wrap = d.wrap ?? 1;
  const avail = d.raw ? 0 : wrap ? L.VIRTQ_DESC_F_AVAIL : L.VIRTQ_DESC_F_USED;
  v.setUint16(off + L.PDESC_FLAGS, (d.flags ?? 0) | avail, true);
}

function ringDesc(rig: Rig, driver: PackedDriver, slot: number, d: RawDesc): void {
  putDesc(rig, rig.dm.guest.translate(driver.descGpa, driver.size * 16) + slot * 16, d);
}

/** An indirect table of `descs` in guest RAM; returns its guest-physical address. */
function table(rig: Rig, descs: RawDesc[]): number {
  const at = rig.data.alloc(descs.length * 16, 16);
  const off = rig.dm.guest.translate(gpa(at), descs.length * 16);
  descs.forEach((d, i) => putDesc(rig, off + i * 16, { raw: true, ...d }));
  return at;
}

const N = L.VIRTQ_DESC_F_NEXT;
const W = L.VIRTQ_DESC_F_WRITE;
const I = L.VIRTQ_DESC_F_INDIRECT;

interface Case {
  name: string;
  status: number;
  size?: number;
  indirect?: boolean;
  state?: (s: PackedQueueState) => PackedQueueState;
  /** Lay out the hostile ring; may pop legally first through `prepare`. */
  ring: (rig: Rig, driver: PackedDriver) => void;
}

const cases: Case[] = [
  { name: 'a NEXT chain around the whole ring', status: S.ST_LOOP, ring: (r, d) => [0, 1, 2, 3].forEach((s) => ringDesc(r, d, s, { flags: N })) },
  {
    name: 'an indirect table longer than the queue',
    status: S.ST_LOOP,
    indirect: true,
    ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: table(r, Array(5).fill({})), len: 5 * 16 }),
  },
  {
    name: 'an indirect descriptor inside an indirect table',
    status: S.ST_NESTED_INDIRECT,
    indirect: true,
    ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: table(r, [{}, { flags: I }]), len: 32 }),
  },
  { name: 'INDIRECT together with NEXT', status: S.ST_NESTED_INDIRECT, indirect: true, ring: (r, d) => ringDesc(r, d, 0, { flags: I | N, addr: table(r, [{}]), len: 16 }) },
  {
    name: 'INDIRECT on the second descriptor of a chain',
    status: S.ST_NESTED_INDIRECT,
    indirect: true,
    ring: (r, d) => {
      ringDesc(r, d, 1, { flags: I, addr: table(r, [{}]), len: 16 });
      ringDesc(r, d, 0, { flags: N });
    },
  },
  { name: 'INDIRECT without VIRTIO_F_INDIRECT_DESC', status: S.ST_NESTED_INDIRECT, ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: table(r, [{}]), len: 16 }) },
  { name: 'an indirect table of length 0', status: S.ST_BAD_INDIRECT_LEN, indirect: true, ring: (r, d) => ringDesc(r, d, 0, { flags: I, len: 0 }) },
  { name: 'an indirect table of length 24', status: S.ST_BAD_INDIRECT_LEN, indirect: true, ring: (r, d) => ringDesc(r, d, 0, { flags: I, len: 24 }) },
  { name: 'an indirect table in the hole', status: S.ST_OUT_OF_RANGE, indirect: true, ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: LOW_BYTES + 4096, len: 32 }) },
  { name: 'an indirect table wrapping 2^64', status: S.ST_OVERFLOW, indirect: true, ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: 2n ** 64n - 16n, len: 32 }) },
  {
    name: 'an indirect table entry outside memory',
    status: S.ST_OUT_OF_RANGE,
    indirect: true,
    ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: table(r, [{}, { addr: HIGH_GPA - 8, len: 16 }]), len: 32 }),
  },
  { name: 'a buffer crossing the end of a region', status: S.ST_OUT_OF_RANGE, ring: (r, d) => ringDesc(r, d, 0, { addr: LOW_BYTES - 8, len: 9 }) },
  { name: 'a buffer at or above 2^53', status: S.ST_OUT_OF_RANGE, ring: (r, d) => ringDesc(r, d, 0, { addr: 2n ** 53n, len: 1 }) },
  { name: 'a buffer wrapping 2^64', status: S.ST_OVERFLOW, ring: (r, d) => ringDesc(r, d, 0, { addr: 2n ** 64n - 16n, len: 32 }) },
  {
    name: 'a readable buffer after a writable one',
    status: S.ST_READ_AFTER_WRITE,
    ring: (r, d) => {
      ringDesc(r, d, 1, {});
      ringDesc(r, d, 0, { flags: W | N });
    },
  },
  {
    name: 'a zero-length readable buffer after a writable one',
    status: S.ST_READ_AFTER_WRITE,
    indirect: true,
    ring: (r, d) => ringDesc(r, d, 0, { flags: I, addr: table(r, [{ flags: W }, { len: 0 }]), len: 32 }),
  },
  {
    name: 'a chain of more than 2^32 - 1 bytes',
    status: S.ST_CHAIN_TOO_LONG,
    ring: (r, d) => {
      ringDesc(r, d, 1, { len: 0xfffff001 });
      ringDesc(r, d, 0, { len: 4096, flags: N });
    },
  },
  {
    name: 'a chain running into a slot not made available',
    status: S.ST_AVAIL_JUMP,
    ring: (r, d) => {
      ringDesc(r, d, 1, { raw: true });
      ringDesc(r, d, 0, { flags: N });
    },
  },
  {
    name: 'a chain crossing the ring end into a slot still holding the old lap',
    status: S.ST_AVAIL_JUMP,
    state: (s) => ({ ...s, nextAvail: 3, nextUsed: 3 }),
    ring: (r, d) => {
      ringDesc(r, d, 0, { wrap: 1 });
      ringDesc(r, d, 3, { flags: N, wrap: 1 });
    },
  },
  {
    name: 'more slots made available than the ring holds',
    status: S.ST_AVAIL_JUMP,
    // The device holds all four slots; the driver marks slot 0 available for the next lap.
    state: (s) => ({ ...s, nextAvail: 0, availWrap: 0, inflightSlots: 4 }),
    ring: (r, d) => ringDesc(r, d, 0, { wrap: 0 }),
  },
];

for (const engine of ['wasm', 'ts'] as KernelEngine[]) {
  describe(`packed ring hostile input [${engine}]`, () => {
    for (const c of cases) {
      it(`${c.name}: ${S.statusName(c.status)}, queue broken, nothing outside the guest changed`, () => {
        const rig = makeRig();
        const driver = new PackedDriver(rig.dm.guest, rig.ram, { size: c.size ?? 4, indirect: c.indirect ?? false });
        const queue = PackedQueue.fromState(rig.dm, (c.state ?? ((s) => s))(driver.deviceState()), engine);
        c.ring(rig, driver);
        const canaries = plantCanaries(rig, allowedRanges(rig, queue));
        assert.throws(() => queue.pop(), (e: unknown) => e instanceof VirtioError && e.status === c.status);
        assert.equal(queue.broken, true);
        assert.throws(() => queue.pop(), (e: unknown) => e instanceof VirtioError && e.status === c.status);
        assert.throws(() => queue.flush(), VirtioError);
        assert.deepEqual(canaries.check(), []);
      });
    }

    it('the same shapes, made legal, pop fine: the checks are not over-eager', () => {
      const rig = makeRig();
      const driver = new PackedDriver(rig.dm.guest, rig.ram, { size: 4, indirect: true });
      const queue = PackedQueue.fromState(rig.dm, { ...driver.deviceState(), nextAvail: 3, nextUsed: 3 }, engine);
      // Crossing the ring end with the flipped wrap counter; ids from the last descriptor.
      ringDesc(rig, driver, 0, { wrap: 0, flags: W, id: 9 });
      ringDesc(rig, driver, 3, { flags: N, wrap: 1, id: 5 });
      const [a] = queue.pop();
      assert.deepEqual([a.id, a.descCount, a.readSegments, a.writeSegments, a.readBytes, a.writeBytes], [9, 2, 1, 1, 64, 64]);
      // A full-size indirect table with NEXT and AVAIL bits set in its entries (ignored, 2.8.7).
      ringDesc(rig, driver, 1, { wrap: 0, flags: I, id: 3, addr: table(rig, [{ flags: N }, { len: 0 }, { flags: N | 0x8080 }, { flags: W }]), len: 64 });
      const [b] = queue.pop();
      assert.deepEqual([b.id, b.descCount, b.readSegments, b.writeSegments], [3, 1, 2, 1]);
      assert.equal(queue.state().inflightSlots, 3);
    });

    it('stops before a chain whose record does not fit, and reports NO_SPACE only for the first', () => {
      const rig = makeRig();
      const { driver, queue } = makeRing(rig, { size: 8 }, engine);
      const k = packedKernels(engine, rig.dm.memory);
      const h = queue.handle();
      driver.add([{ gpa: LOW_BYTES / 2, len: 8 }], []);
      driver.add([{ gpa: LOW_BYTES / 2, len: 8 }], [{ gpa: LOW_BYTES / 2 + 64, len: 8 }]);
      assert.equal(k.packedPop(h.blockOff, h.recordOff, 31, 8), S.ST_NO_SPACE);
      assert.equal(k.packedPop(h.blockOff, h.recordOff, 32 + 47, 8), 1);
      assert.equal(queue.state().nextAvail, 1);
      assert.equal(k.packedPop(h.blockOff, h.recordOff, 48, 8), 1);
      assert.equal(queue.state().inflightSlots, 3);
    });
  });
}
