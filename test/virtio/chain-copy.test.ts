// Reading and writing across a chain's segments (src/virtio/chain.ts): short pieces are copied byte
// by byte and long ones with TypedArray.set, and either way the bytes come out in segment order,
// a read that asks for more than the chain holds copies nothing, and every guest range written is
// marked in the dirty log at its own GPA.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHAIN_HEADER_BYTES, DescriptorChain, SEGMENT_BYTES, chainRecordBytes, writeChainHeader, writeSegment } from '../../src/virtio/chain.js';
import type { WriteLog } from '../../src/memory/write-log.js';

/** Segments at these memory offsets and lengths, GPA = 0x1_0000_0000 + offset (above 4 GiB). */
const READ_SEGS: [number, number][] = [[100, 3], [200, 60], [300, 200], [600, 5], [700, 64], [800, 65]];
const WRITE_SEGS: [number, number][] = [[1000, 7], [1100, 100], [1300, 1]];
const RECORD = 2048;

function chainOver(memory: Uint8Array): DescriptorChain {
  const view = new DataView(memory.buffer);
  const segs = [...READ_SEGS, ...WRITE_SEGS];
  const sum = (s: [number, number][]) => s.reduce((n, [, len]) => n + len, 0);
  writeChainHeader(view, RECORD, 7, segs.length, READ_SEGS.length, WRITE_SEGS.length, sum(READ_SEGS), sum(WRITE_SEGS));
  segs.forEach(([off, len], i) => writeSegment(view, RECORD + CHAIN_HEADER_BYTES + i * SEGMENT_BYTES, off, len, off, 1));
  assert.equal(chainRecordBytes(segs.length), CHAIN_HEADER_BYTES + segs.length * SEGMENT_BYTES);
  return new DescriptorChain(view, RECORD);
}

function memoryWithPattern(): { memory: Uint8Array; expected: number[] } {
  const memory = new Uint8Array(4096);
  const expected: number[] = [];
  for (const [off, len] of READ_SEGS) {
    for (let i = 0; i < len; i++) {
      memory[off + i] = (off + 7 * i) & 0xff;
      expected.push(memory[off + i]);
    }
  }
  return { memory, expected };
}

describe('descriptor chain copies', () => {
  it('reads every segment in order, in pieces that cross segments, short and long', () => {
    const { memory, expected } = memoryWithPattern();
    const chain = chainOver(memory);
    assert.equal(chain.segmentOffset(2), 300);
    assert.equal(chain.segmentLength(2), 200);
    assert.equal(chain.segment(2).gpa, 2 ** 32 + 300);
    const r = chain.reader(memory);
    const got: number[] = [];
    // Pieces of 1, 2, 50, 150, ... bytes: some stay inside a segment, some cross several.
    for (const n of [1, 2, 50, 150, 4, 70, 60, 60]) {
      const dst = new Uint8Array(n);
      assert.equal(r.read(dst), n);
      got.push(...dst);
    }
    const rest = r.readExact(r.remaining);
    assert.ok(rest !== null);
    got.push(...rest);
    assert.deepEqual(got, expected);
    assert.equal(r.remaining, 0);
    assert.equal(r.read(new Uint8Array(4)), 0, 'nothing left');
  });

  it('readInto copies exactly n bytes into scratch, or nothing when the chain or the scratch is shorter', () => {
    const { memory, expected } = memoryWithPattern();
    const chain = chainOver(memory);
    const r = chain.reader(memory);
    const scratch = new Uint8Array(512).fill(0xee);
    assert.ok(r.readInto(scratch, 64));
    assert.deepEqual([...scratch.subarray(0, 64)], expected.slice(0, 64));
    assert.equal(scratch[64], 0xee, 'nothing past n');
    assert.equal(r.readInto(new Uint8Array(8), 9), false, 'scratch too short');
    assert.equal(r.readInto(scratch, r.remaining + 1), false, 'chain too short');
    assert.equal(r.remaining, expected.length - 64, 'a refused read consumed nothing');
    assert.ok(r.readInto(scratch, 300));
    assert.deepEqual([...scratch.subarray(0, 300)], expected.slice(64, 364));
    assert.ok(r.readInto(scratch, 0));
  });

  it('writes across the writable segments and marks each range at its GPA', () => {
    const memory = new Uint8Array(4096);
    const chain = chainOver(memory);
    const marks: [number, number][] = [];
    const log: WriteLog = { enabled: true, mark: (gpa, len) => void marks.push([gpa, len]) };
    const w = chain.writer(memory);
    const src = Uint8Array.from({ length: 90 }, (_, i) => i + 1);
    assert.equal(w.write(src.subarray(0, 5), log), 5);
    assert.equal(w.write(src.subarray(5), log), 85);
    const more = Uint8Array.from({ length: 40 }, (_, i) => 200 + i);
    assert.equal(w.write(more, log), 18, 'what fits: 108 writable bytes, 90 written before');
    assert.equal(w.written, 108);
    assert.deepEqual([...memory.subarray(1000, 1007)], [...src.subarray(0, 7)]);
    assert.deepEqual([...memory.subarray(1100, 1200)], [...src.subarray(7), ...more.subarray(0, 17)]);
    assert.deepEqual([...memory.subarray(1300, 1301)], [more[17]]);
    assert.deepEqual(marks, [[2 ** 32 + 1000, 5], [2 ** 32 + 1005, 2], [2 ** 32 + 1100, 83], [2 ** 32 + 1183, 17], [2 ** 32 + 1300, 1]]);
    // Bytes between the segments are untouched.
    assert.ok(memory.subarray(1007, 1100).every((b) => b === 0) && memory.subarray(1200, 1300).every((b) => b === 0));
  });
});
