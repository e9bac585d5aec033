// The container format by itself (src/state): header, checksum, records, bounds-checked fields,
// skipping unknown records, and each kind of damage refused with its own code.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  FieldReader, RECORD_CRITICAL, STATE_HEADER_BYTES, StateError, StateErrorCode, StateKind, StateWriter, dispatch, openState, stateChecksum,
} from '../../src/state/index.js';

const code = (c: StateErrorCode) => (err: unknown) => err instanceof StateError && err.code === c;

function sample(): Uint8Array {
  return new StateWriter(StateKind.Provider)
    .record(7, (w) => w.u8(200).u16(65535).u32(0xdeadbeef).u64(2 ** 53 - 1).u64(0xffff_ffff_ffff_ffffn).i32(-1).bool(true))
    .record(8, (w) => w.bytes(Uint8Array.of(1, 2, 3)).str('dropped: ünïcode').list([5, 6, 7], (x, v) => x.u32(v)))
    .finish();
}

/** Patch bytes and fix the checksum, so the damage reaches the record decoders. */
function reseal(buf: Uint8Array): Uint8Array {
  new DataView(buf.buffer, buf.byteOffset).setUint32(28, stateChecksum(buf), true);
  return buf;
}

describe('state container', () => {
  it('round-trips every field type', () => {
    const { header, records } = openState(sample(), StateKind.Provider);
    assert.deepEqual([header.major, header.minor, header.kind, header.recordCount], [1, 0, StateKind.Provider, 2]);
    const a = records[0].body;
    assert.deepEqual([a.u8('a'), a.u16('b'), a.u32('c'), a.u64n('d'), a.u64('e'), a.i32('f'), a.bool('g')], [200, 65535, 0xdeadbeef, 2 ** 53 - 1, 0xffff_ffff_ffff_ffffn, -1, true]);
    assert.equal(a.remaining, 0);
    const b = records[1].body;
    assert.deepEqual([...b.bytes('x', 16)], [1, 2, 3]);
    assert.equal(b.str('s'), 'dropped: ünïcode');
    assert.deepEqual(b.list('n', 10, 4, (r) => r.u32('v')), [5, 6, 7]);
  });

  it('refuses a read past the end of a record as Truncated, a u64 above 2^53 as BadRecord', () => {
    const { records } = openState(sample(), StateKind.Provider);
    const a = records[0].body;
    a.u8('a');
    a.u16('b');
    a.u32('c');
    a.u64n('d');
    assert.throws(() => a.u64n('e'), code(StateErrorCode.BadRecord));
    a.i32('f');
    a.bool('g');
    assert.throws(() => a.u8('past'), code(StateErrorCode.Truncated));
  });

  it('checks list counts against the bytes left before reading', () => {
    const buf = new StateWriter(StateKind.Provider).record(1, (w) => w.u32(1_000_000).u32(1)).finish();
    const { records } = openState(buf, StateKind.Provider);
    assert.throws(() => records[0].body.list('items', 2_000_000, 4, (r) => r.u32('v')), code(StateErrorCode.Truncated));
    const again = openState(buf, StateKind.Provider).records[0].body;
    assert.throws(() => again.list('items', 10, 4, (r) => r.u32('v')), code(StateErrorCode.BadRecord));
  });

  it('refuses every truncation of a buffer as Truncated', () => {
    const buf = sample();
    for (let n = 0; n < buf.length; n++) assert.throws(() => openState(buf.subarray(0, n), StateKind.Provider), code(StateErrorCode.Truncated), `length ${n}`);
  });

  it('refuses any corrupted byte past the header fields it checks first', () => {
    const buf = sample();
    for (let i = 28; i < buf.length; i++) {
      const bad = buf.slice();
      bad[i] ^= 0x40;
      assert.throws(() => openState(bad, StateKind.Provider), code(StateErrorCode.BadChecksum), `byte ${i}`);
    }
  });

  it('names what is wrong in the header: magic, version, kind, lengths, flags', () => {
    const buf = sample();
    const patch = (off: number, f: (v: DataView) => void, fix = true) => {
      const b = buf.slice();
      f(new DataView(b.buffer));
      void off;
      return fix ? reseal(b) : b;
    };
    assert.throws(() => openState(patch(0, (v) => v.setUint8(0, 0x57)), StateKind.Provider), code(StateErrorCode.BadMagic));
    assert.throws(() => openState(patch(8, (v) => v.setUint16(8, 2, true)), StateKind.Provider), code(StateErrorCode.BadVersion));
    assert.throws(() => openState(buf, StateKind.Device), code(StateErrorCode.BadKind));
    assert.throws(() => openState(patch(14, (v) => v.setUint16(14, 40, true)), StateKind.Provider), code(StateErrorCode.BadLength));
    assert.throws(() => openState(patch(16, (v) => v.setUint32(16, 1, true)), StateKind.Provider), code(StateErrorCode.BadVersion));
    // An unknown optional flag is ignored.
    openState(patch(16, (v) => v.setUint32(16, 0x10000, true)), StateKind.Provider);
    assert.throws(() => openState(patch(24, (v) => v.setUint32(24, 3, true)), StateKind.Provider), code(StateErrorCode.BadLength));
    const longer = new Uint8Array(buf.length + 4);
    longer.set(buf);
    assert.throws(() => openState(longer, StateKind.Provider), code(StateErrorCode.BadLength));
    // A newer minor version is read.
    openState(patch(10, (v) => v.setUint16(10, 9, true)), StateKind.Provider);
  });

  it('skips record types it does not know, refuses unknown critical ones and repeated singletons', () => {
    const buf = new StateWriter(StateKind.Provider)
      .record(1, (w) => w.u32(11))
      .record(0x7777, (w) => w.bytes(new Uint8Array(100)))
      .record(2, (w) => w.u32(22).u32(99))
      .finish();
    const seen: number[] = [];
    const decoders = new Map<number, (r: FieldReader) => void>([
      [1, (r) => seen.push(r.u32('v'))],
      [2, (r) => seen.push(r.u32('v'))],
    ]);
    dispatch(openState(buf, StateKind.Provider).records, decoders);
    assert.deepEqual(seen, [11, 22]);
    const critical = new StateWriter(StateKind.Provider).record(0x7777, (w) => w.u8(0), RECORD_CRITICAL).finish();
    assert.throws(() => dispatch(openState(critical, StateKind.Provider).records, decoders), code(StateErrorCode.BadRecord));
    const twice = new StateWriter(StateKind.Provider).record(1, (w) => w.u32(1)).record(1, (w) => w.u32(2)).finish();
    assert.throws(() => dispatch(openState(twice, StateKind.Provider).records, decoders, new Set([1])), code(StateErrorCode.Inconsistent));
  });

  it('refuses a record whose length runs past the buffer, even with a right checksum', () => {
    const buf = sample();
    new DataView(buf.buffer).setUint32(STATE_HEADER_BYTES + 4, 10_000, true);
    assert.throws(() => openState(reseal(buf), StateKind.Provider), code(StateErrorCode.Truncated));
  });

  it('never throws anything but StateError on random bytes behind a valid header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        const head = new StateWriter(StateKind.Provider).finish();
        const buf = new Uint8Array(head.length + tail.length);
        buf.set(head);
        buf.set(tail, head.length);
        const v = new DataView(buf.buffer);
        v.setUint32(20, buf.length, true);
        reseal(buf);
        try {
          const { records } = openState(buf, StateKind.Provider);
          for (const r of records) while (r.body.remaining > 0) r.body.u8('b');
        } catch (err) {
          assert.ok(err instanceof StateError, String(err));
        }
      }),
    );
  });
});
