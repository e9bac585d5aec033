// Journal entry encoding (device state, unpublished used elements, atomic intent): round trips, and hostile
// bytes (bad magic, every truncation, lengths past the end, a queue twice, trailing bytes,
// random damage) are refused with BackendError BAD_JOURNAL and nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';
import { type JournalEntry, decodeJournalEntry, encodeJournalEntry, journalEntryChunks } from '../../src/backend/journal-entry.js';

const badJournal = (e: unknown) => e instanceof BackendError && e.code === BackendErrorCode.BadJournal;

const SAMPLE: JournalEntry = {
  deviceState: Uint8Array.from({ length: 37 }, (_, i) => (i * 7 + 1) & 0xff),
  unpublished: [
    { vq: 2, used: [[0, 16, 1], [5, 0, 3], [3, 0xffff_ffff, 0xffff_ffff]] },
    { vq: 0, used: [] },
    { vq: 0xffff_ffff, used: [[1, 4096, 1]] },
  ],
  intent: { qpn: 0x123456, psn: 0xabcdef, opcode: 0x14, rkey: 0xdead_beef, offset: 0x0123_4568, va: 0x7f00_0000_0008n, before: 0xffff_ffff_ffff_fffen, after: 1n },
};

/** Decode `bytes` and expect BAD_JOURNAL (a plain assert.throws would also accept a RangeError). */
function refuse(bytes: Uint8Array, what: string): void {
  let threw: unknown = null;
  try {
    decodeJournalEntry(bytes);
  } catch (e) {
    threw = e;
  }
  assert.ok(threw !== null, `${what}: decoded without error`);
  assert.ok(badJournal(threw), `${what}: threw ${String(threw)} instead of BAD_JOURNAL`);
}

describe('journal entry encoding', () => {
  it('round trips an empty entry and one with several queues', () => {
    const empty: JournalEntry = { deviceState: new Uint8Array(0), unpublished: [], intent: null };
    const e0 = encodeJournalEntry(empty);
    assert.equal(e0.length, 12 + 48);
    assert.deepEqual(decodeJournalEntry(e0), empty);
    const e1 = encodeJournalEntry(SAMPLE);
    assert.equal(e1.length, 12 + 37 + 3 * 8 + 4 * 12 + 48);
    assert.deepEqual(decodeJournalEntry(e1), SAMPLE);
  });

  it('the chunks a journal commits join into the encoding', () => {
    const chunks = journalEntryChunks(SAMPLE);
    assert.deepEqual(Uint8Array.from(chunks.flatMap((c) => [...c])), encodeJournalEntry(SAMPLE));
  });

  it('decodes an entry that sits at an offset inside a larger buffer, and copies the device state', () => {
    const enc = encodeJournalEntry(SAMPLE);
    const big = new Uint8Array(enc.length + 10).fill(0xff);
    big.set(enc, 3);
    const got = decodeJournalEntry(big.subarray(3, 3 + enc.length));
    assert.deepEqual(got, SAMPLE);
    big.fill(0);
    assert.deepEqual(got.deviceState, SAMPLE.deviceState, 'the decoded state does not alias the input');
  });

  it('refuses a wrong magic', () => {
    const enc = encodeJournalEntry(SAMPLE);
    for (let i = 0; i < 4; i++) {
      const b = enc.slice();
      b[i] ^= 0x20;
      refuse(b, `magic byte ${i}`);
    }
  });

  it('refuses every truncation of a valid entry', () => {
    for (const entry of [SAMPLE, { deviceState: new Uint8Array(0), unpublished: [], intent: null }]) {
      const enc = encodeJournalEntry(entry);
      for (let n = 0; n < enc.length; n++) refuse(enc.slice(0, n), `first ${n} of ${enc.length} bytes`);
      assert.deepEqual(decodeJournalEntry(enc), entry);
    }
  });

  it('refuses a device state length or used count pointing past the end', () => {
    const enc = encodeJournalEntry(SAMPLE);
    const v = new DataView(enc.buffer);
    for (const len of [38, enc.length, 0x7fff_ffff, 0xffff_ffff]) {
      const b = enc.slice();
      new DataView(b.buffer).setUint32(4, len, true);
      refuse(b, `device state length ${len}`);
    }
    const countAt = 8 + 37;
    assert.equal(v.getUint32(countAt, true), 3);
    for (const count of [4, 0xffff_ffff]) {
      const b = enc.slice();
      new DataView(b.buffer).setUint32(countAt, count, true);
      refuse(b, `queue count ${count}`);
    }
    for (const n of [4, 0x2000_0000, 0xffff_ffff]) {
      const b = enc.slice();
      new DataView(b.buffer).setUint32(countAt + 4 + 4, n, true); // the first queue's element count
      refuse(b, `used count ${n}`);
    }
  });

  it('refuses an intent flag other than 0 or 1', () => {
    const enc = encodeJournalEntry(SAMPLE);
    for (const flag of [2, 0xffff_ffff]) {
      const b = enc.slice();
      new DataView(b.buffer).setUint32(b.length - 48, flag, true);
      refuse(b, `intent flag ${flag}`);
    }
  });

  it('refuses a queue listed twice', () => {
    refuse(encodeJournalEntry({ deviceState: new Uint8Array(4), unpublished: [{ vq: 1, used: [[0, 1, 1]] }, { vq: 1, used: [] }], intent: null }), 'queue 1 twice');
    refuse(encodeJournalEntry({ deviceState: new Uint8Array(0), unpublished: [{ vq: 0, used: [] }, { vq: 3, used: [] }, { vq: 0, used: [] }], intent: null }), 'queue 0 twice');
  });

  it('refuses trailing bytes', () => {
    const enc = encodeJournalEntry(SAMPLE);
    for (const extra of [1, 4, 8]) {
      const b = new Uint8Array(enc.length + extra);
      b.set(enc);
      refuse(b, `${extra} trailing zero bytes`);
    }
  });

  it('random damage decodes or is BAD_JOURNAL, never another error', () => {
    const enc = encodeJournalEntry(SAMPLE);
    let s = 0x9e3779b9;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s;
    };
    let refused = 0;
    for (let round = 0; round < 2000; round++) {
      const b = enc.slice();
      for (let k = 1 + (rnd() % 3); k > 0; k--) b[rnd() % b.length] = rnd() & 0xff;
      try {
        decodeJournalEntry(b);
      } catch (e) {
        assert.ok(badJournal(e), `round ${round}: ${String(e)}`);
        refused++;
      }
    }
    assert.ok(refused > 0, 'some damage was refused');
  });
});
