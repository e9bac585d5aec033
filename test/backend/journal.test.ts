// The control block (layout checks, ownership word, doorbells) and the two-slot journal in it:
// commits round trip, an interrupted commit leaves the previous entry whole, and a damaged
// published slot is refused (BAD_JOURNAL) rather than replaced by the older one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CALL_BYTES, ControlBlock, SLOT_HEADER_BYTES, W } from '../../src/backend/control-block.js';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';
import { Journal } from '../../src/backend/journal.js';

const SLOT = 4096;

function refused(code: BackendErrorCode): (e: unknown) => boolean {
  return (e: unknown) => e instanceof BackendError && e.code === code;
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

/** A journal with two entries committed (so an older, valid slot exists beside the published one). */
function twoEntries() {
  const block = ControlBlock.create(SLOT);
  const journal = new Journal(block);
  journal.commit(bytes(100, 1));
  const second = bytes(200, 2);
  journal.commit(second);
  const off = block.slotOff((journal.generation & 1) as 0 | 1);
  return { block, journal, second, off, view: new DataView(block.buffer) };
}

describe('journal', () => {
  it('is empty before any commit, then returns each commit with a counting generation', () => {
    const journal = new Journal(ControlBlock.create(SLOT));
    assert.equal(journal.generation, 0);
    assert.equal(journal.latest(), null);
    assert.equal(journal.capacity, SLOT);
    for (let g = 1; g <= 5; g++) {
      const payload = bytes(10 * g, g);
      assert.equal(journal.commit(payload), g);
      assert.equal(journal.generation, g);
      assert.deepEqual(journal.latest(), { generation: g, payload });
    }
    assert.equal(journal.commit(new Uint8Array(0)), 6);
    assert.deepEqual(journal.latest(), { generation: 6, payload: new Uint8Array(0) });
    assert.equal(journal.commit(bytes(SLOT, 9)), 7, 'a payload of exactly the capacity fits');
    assert.deepEqual(journal.latest()?.payload, bytes(SLOT, 9));
  });

  it('commits several chunks as one entry; their total is what must fit', () => {
    const block = ControlBlock.create(SLOT);
    const journal = new Journal(block);
    const a = bytes(10, 1);
    const b = bytes(0, 2);
    const c = bytes(300, 3);
    assert.equal(journal.commit(a, b, c), 1);
    assert.deepEqual(journal.latest()?.payload, Uint8Array.from([...a, ...c]));
    assert.equal(journal.commit(), 2, 'no chunks: an empty entry');
    assert.deepEqual(journal.latest()?.payload, new Uint8Array(0));
    const before = block.bytes.slice();
    assert.throws(() => journal.commit(bytes(SLOT / 2, 4), bytes(SLOT / 2 + 1, 5)), refused(BackendErrorCode.JournalFull));
    assert.deepEqual(block.bytes, before, 'a refused commit writes nothing');
  });

  it('latest() returns a copy: changing it or the committed buffer changes nothing', () => {
    const journal = new Journal(ControlBlock.create(SLOT));
    const payload = bytes(64, 3);
    journal.commit(payload);
    payload.fill(0);
    const a = journal.latest();
    assert.ok(a);
    assert.deepEqual(a.payload, bytes(64, 3));
    a.payload.fill(0xee);
    assert.deepEqual(journal.latest()?.payload, bytes(64, 3));
  });

  it('a commit interrupted before publishing leaves the previous entry intact', () => {
    const block = ControlBlock.create(SLOT);
    const journal = new Journal(block);
    for (let g = 1; g <= 2; g++) {
      const payload = bytes(300, g);
      journal.commit(payload);
      // The dying commit wrote the other slot (header and payload) but never stored the generation.
      const next = block.slotOff(((g + 1) & 1) as 0 | 1);
      block.bytes.fill(0xa5, next, next + SLOT_HEADER_BYTES + 1000);
      new DataView(block.buffer).setUint32(next, g + 1, true);
      assert.equal(journal.generation, g);
      assert.deepEqual(journal.latest(), { generation: g, payload });
    }
  });

  it('a flipped payload byte in the published slot is a CRC mismatch, not the older entry', () => {
    const { block, journal, off } = twoEntries();
    block.bytes[off + SLOT_HEADER_BYTES + 150] ^= 0x01;
    assert.throws(() => journal.latest(), (e: unknown) => refused(BackendErrorCode.BadJournal)(e) && /CRC/.test((e as Error).message));
  });

  it('a damaged CRC field is refused', () => {
    const { journal, off, view } = twoEntries();
    view.setUint32(off + 8, view.getUint32(off + 8, true) ^ 0x8000_0000, true);
    assert.throws(() => journal.latest(), refused(BackendErrorCode.BadJournal));
  });

  it('a slot naming another generation is refused, including the older generation', () => {
    for (const other of [0, 1, 3, 0xffff_ffff]) {
      const { journal, off, view } = twoEntries();
      view.setUint32(off, other, true);
      assert.throws(() => journal.latest(), refused(BackendErrorCode.BadJournal), `slot generation ${other}`);
    }
  });

  it('a length above the capacity is refused', () => {
    for (const len of [SLOT + 1, 0x7fff_ffff, 0xffff_ffff]) {
      const { journal, off, view } = twoEntries();
      view.setUint32(off + 4, len, true);
      assert.throws(() => journal.latest(), (e: unknown) => refused(BackendErrorCode.BadJournal)(e) && /length/.test((e as Error).message), `length ${len}`);
    }
  });

  it('a shorter length within the capacity fails the CRC', () => {
    const { journal, off, view, second } = twoEntries();
    view.setUint32(off + 4, second.length - 1, true);
    assert.throws(() => journal.latest(), refused(BackendErrorCode.BadJournal));
  });

  it('after generation 2^32 - 1 comes 2, never 0 ("nothing committed"), and the slots keep alternating', () => {
    const block = ControlBlock.create(SLOT);
    const j = new Journal(block);
    block.store(W.generation, 0xfffffffe | 0); // as if 2^32 - 2 commits had happened
    assert.equal(j.commit(Uint8Array.of(1)), 0xffffffff);
    assert.deepEqual(j.latest(), { generation: 0xffffffff, payload: Uint8Array.of(1) });
    assert.equal(j.commit(Uint8Array.of(2)), 2);
    assert.deepEqual(j.latest(), { generation: 2, payload: Uint8Array.of(2) });
    // The entry before the wrap is still whole in the other slot.
    const older = new DataView(block.buffer, block.slotOff(1), SLOT_HEADER_BYTES);
    assert.equal(older.getUint32(0, true), 0xffffffff);
  });

  it('a payload over the capacity is JOURNAL_FULL and changes nothing', () => {
    const { block, journal, second } = twoEntries();
    const before = block.bytes.slice();
    assert.throws(() => journal.commit(bytes(SLOT + 1, 7)), refused(BackendErrorCode.JournalFull));
    assert.equal(journal.generation, 2);
    assert.deepEqual(journal.latest(), { generation: 2, payload: second });
    assert.deepEqual(block.bytes, before, 'no byte of the block changed');
  });
});

describe('control block', () => {
  it('create refuses slot sizes that are not whole, small, or not multiples of 8', () => {
    for (const bad of [0, 4095, 4100, 4096.5, -4096, Number.NaN, Infinity]) {
      assert.throws(() => ControlBlock.create(bad), RangeError, `slotBytes ${bad}`);
    }
    const block = ControlBlock.create(8192);
    assert.equal(block.slotBytes, 8192);
    assert.equal(block.slotOff(1) - block.slotOff(0), SLOT_HEADER_BYTES + 8192);
    assert.equal(block.slotOff(0), block.callOff + CALL_BYTES);
    assert.equal(block.slotOff(1) + SLOT_HEADER_BYTES + 8192, block.buffer.byteLength);
  });

  it('attach finds the same block, and its journal, in the buffer', () => {
    const block = ControlBlock.create(SLOT);
    new Journal(block).commit(bytes(40, 4));
    const again = ControlBlock.attach(block.buffer);
    assert.equal(again.slotBytes, SLOT);
    assert.deepEqual(new Journal(again).latest(), { generation: 1, payload: bytes(40, 4) });
  });

  it('attach refuses what is not a control block', () => {
    const good = ControlBlock.create(SLOT);
    const size = good.buffer.byteLength;
    const notOurs: unknown[] = [
      new ArrayBuffer(size),
      new SharedArrayBuffer(size), // big enough, but never made a control block: no magic
      new Uint8Array(size),
      new Int32Array(good.buffer),
      null,
      undefined,
      { byteLength: size },
      new SharedArrayBuffer(size - 1), // one byte short of two 4096-byte slots
    ];
    for (const [i, b] of notOurs.entries()) assert.throws(() => ControlBlock.attach(b), refused(BackendErrorCode.BadJournal), `case ${i}`);
    // A real block with its magic or version damaged.
    const wrongMagic = ControlBlock.create(SLOT);
    wrongMagic.store(W.magic, 0x12345678);
    const wrongVersion = ControlBlock.create(SLOT);
    wrongVersion.store(W.version, 2);
    for (const b of [wrongMagic.buffer, wrongVersion.buffer]) assert.throws(() => ControlBlock.attach(b), refused(BackendErrorCode.BadJournal));
  });

  it('ownership: one thread at a time, epochs count up, only the owner releases', () => {
    const block = ControlBlock.create(SLOT);
    assert.equal(block.owner, null);
    assert.equal(block.take(0), 1, 'thread id 0 is a valid owner');
    assert.equal(block.owner, 0);
    assert.ok(block.owns(0));
    assert.throws(() => block.take(7), refused(BackendErrorCode.NotOwner));
    assert.throws(() => block.take(0), refused(BackendErrorCode.NotOwner), 'the owner cannot take it twice');
    assert.equal(block.owns(7), false);
    assert.equal(block.release(7), false);
    assert.equal(block.owner, 0, 'a wrong release leaves the owner');
    assert.equal(block.release(0), true);
    assert.equal(block.owner, null);
    assert.equal(block.release(0), false, 'releasing twice does nothing');
    assert.equal(block.take(7), 2);
    assert.ok(block.owns(7));
    assert.equal(block.owns(0), false);
    assert.ok(block.release(7));
    assert.equal(block.take(3), 3, 'each take starts a new epoch');
    // The epoch lives in the shared words: another view of the block sees the owner.
    assert.equal(ControlBlock.attach(block.buffer).owner, 3);
  });

  it('doorbells are null until set, then read back (base 0 included)', () => {
    const block = ControlBlock.create(SLOT);
    assert.equal(block.doorbells, null);
    block.setDoorbells(0, 3);
    assert.deepEqual(block.doorbells, { base: 0, numQueues: 3 });
    block.setDoorbells(0x10000, 5);
    assert.deepEqual(ControlBlock.attach(block.buffer).doorbells, { base: 0x10000, numQueues: 5 });
  });
});
