// Framing and message bodies: frames survive any split of the stream, and hostile bytes — an
// unknown type, a length over the limit, reserved bits, a stream that stops mid-frame, a body cut
// short or padded — are refused with their own MigrationError code, never anything else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MigrationError, MigrationErrorCode } from '../../src/migration/errors.js';
import { FRAME_HEADER_BYTES, FrameReader, MessageType, encodeFrame } from '../../src/migration/frame.js';
import {
  PAGE_BYTES, PageBatch, decodeAbort, decodeBlackout, decodeConfirm, decodeHello, decodeHelloAck, decodePages, decodeRoundEnd, decodeSwitchover, encodeAbort,
  encodeBlackout, encodeConfirm, encodeHello, encodeHelloAck, encodeRoundEnd, encodeSwitchover, encodeStatePreview, decodeStatePreview, PROTOCOL_VERSION,
} from '../../src/migration/messages.js';

const TYPES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] as MessageType[];

function code(c: MigrationErrorCode) {
  return (e: unknown) => e instanceof MigrationError && e.code === c;
}

function header(bodyBytes: number, type: number, reserved = 0): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  const v = new DataView(h.buffer);
  v.setUint32(0, bodyBytes, true);
  v.setUint16(4, type, true);
  v.setUint16(6, reserved, true);
  return h;
}

function bodyOf(frame: Uint8Array): Uint8Array {
  return frame.subarray(FRAME_HEADER_BYTES);
}

describe('frame reader', () => {
  it('gives back the same frames however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.constantFrom(...TYPES), body: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 12 }),
        fc.array(fc.nat(4000), { maxLength: 20 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.body)));
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const reader = new FrameReader(1024);
          const got = [];
          let prev = 0;
          for (const p of [...points, stream.length]) {
            got.push(...reader.push(stream.subarray(prev, p)));
            prev = p;
          }
          reader.end();
          assert.deepEqual(got.map((f) => ({ type: f.type, body: [...f.body] })), frames.map((f) => ({ type: f.type, body: [...f.body] })));
        },
      ),
      { numRuns: 300, seed: 5 },
    );
  });

  it('refuses an unknown type, an oversized length and reserved bits from the header alone', () => {
    assert.throws(() => new FrameReader().push(header(0, 0)), code(MigrationErrorCode.BadType));
    assert.throws(() => new FrameReader().push(header(0, 99)), code(MigrationErrorCode.BadType));
    assert.throws(() => new FrameReader().push(header(0, 0xffff)), code(MigrationErrorCode.BadType));
    // Only the header has arrived: the reader refuses before waiting for (or holding) the body.
    const r = new FrameReader(1 << 20);
    assert.throws(() => r.push(header((1 << 20) + 1, MessageType.Pages)), code(MigrationErrorCode.Oversized));
    assert.throws(() => new FrameReader().push(header(0xffffffff, MessageType.DeviceState)), code(MigrationErrorCode.Oversized));
    assert.throws(() => new FrameReader().push(header(0, MessageType.Hello, 1)), code(MigrationErrorCode.Malformed));
  });

  it('refuses a stream that ends inside a header or a body', () => {
    const full = encodeFrame(MessageType.AppState, new Uint8Array(100));
    for (const cut of [1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 99]) {
      const r = new FrameReader();
      assert.deepEqual(r.push(full.subarray(0, cut)), []);
      assert.throws(() => r.end(), code(MigrationErrorCode.ShortFrame), `cut at ${cut}`);
    }
    const r = new FrameReader();
    assert.equal(r.push(full).length, 1);
    r.end();
  });
});

describe('message bodies', () => {
  const hello = { ip: '127.0.24.9', ramBytes: 32 << 20, arenaBytes: 4 << 20, blackoutWatchMs: 2000, regions: [{ gpa: 0, size: 16 << 20 }, { gpa: 1 << 30, size: 4096 }] };
  const samples: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
    ['HELLO', encodeHello(hello), decodeHello],
    ['HELLO_ACK', encodeHelloAck(), decodeHelloAck],
    ['ROUND_END', encodeRoundEnd({ round: 3, pages: 77, final: true }), decodeRoundEnd],
    ['SWITCHOVER', encodeSwitchover({ guestPausedAt: 1.5e12 + 0.25, suspended: [{ qpn: 17, at: 1.5e12 }, { qpn: 18, at: 1.5e12 + 0.01 }] }), decodeSwitchover],
    ['CONFIRM', encodeConfirm({ guestResumedAt: 1.7e12 + 0.125, vetMs: 4.5, restoreMs: 3.25, resumeMs: 0.5 }), decodeConfirm],
    ['BLACKOUT', encodeBlackout({ resumed: [{ qpn: 17, at: 3 }], firstCompletion: [{ qpn: 17, at: Number.NaN }] }), decodeBlackout],
    ['ABORT', encodeAbort({ code: 'REFUSED', reason: 'too big ✗' }), decodeAbort],
    ['STATE_PREVIEW', encodeStatePreview({ deviceState: Uint8Array.of(1, 2, 3, 4, 5), guestState: Uint8Array.of(9, 8, 7) }), decodeStatePreview],
  ];

  it('round-trip', () => {
    assert.deepEqual(decodeHello(bodyOf(samples[0][1])), { version: PROTOCOL_VERSION, ...hello });
    assert.deepEqual(decodeRoundEnd(bodyOf(samples[2][1])), { round: 3, pages: 77, final: true });
    assert.deepEqual(decodeSwitchover(bodyOf(samples[3][1])).suspended[1], { qpn: 18, at: 1.5e12 + 0.01 });
    assert.deepEqual(decodeConfirm(bodyOf(samples[4][1])), { guestResumedAt: 1.7e12 + 0.125, vetMs: 4.5, restoreMs: 3.25, resumeMs: 0.5 });
    assert.ok(Number.isNaN(decodeBlackout(bodyOf(samples[5][1])).firstCompletion[0].at));
    assert.deepEqual(decodeAbort(bodyOf(samples[6][1])), { code: 'REFUSED', reason: 'too big ✗' });
    const preview = decodeStatePreview(bodyOf(samples[7][1]));
    assert.deepEqual([[...preview.deviceState], [...preview.guestState]], [[1, 2, 3, 4, 5], [9, 8, 7]]);
  });

  it('CONFIRM: a negative or non-finite duration is MALFORMED', () => {
    for (const bad of [{ vetMs: -1 }, { restoreMs: Number.NaN }, { resumeMs: Number.POSITIVE_INFINITY }, { guestResumedAt: Number.NaN }]) {
      const frame = encodeConfirm({ guestResumedAt: 1e12, vetMs: 0, restoreMs: 1, resumeMs: 1, ...bad });
      assert.throws(() => decodeConfirm(bodyOf(frame)), code(MigrationErrorCode.Malformed), JSON.stringify(bad));
    }
  });

  it('every truncation or padding of a body is SHORT_FRAME or MALFORMED', () => {
    for (const [name, frame, decode] of samples) {
      const body = bodyOf(frame);
      for (let n = 0; n < body.length; n++) {
        assert.throws(() => decode(body.subarray(0, n)), (e: unknown) => e instanceof MigrationError && [MigrationErrorCode.ShortFrame, MigrationErrorCode.Malformed, MigrationErrorCode.Version].includes(e.code), `${name} cut to ${n}`);
      }
      assert.throws(() => decode(Uint8Array.from([...body, 0])), code(MigrationErrorCode.Malformed), `${name} padded`);
    }
  });

  it('HELLO: a foreign stream or another version is VERSION; a bad layout is MALFORMED', () => {
    assert.throws(() => decodeHello(bodyOf(encodeHello(hello, PROTOCOL_VERSION - 1))), code(MigrationErrorCode.Version));
    assert.throws(() => decodeHello(bodyOf(encodeHello(hello, PROTOCOL_VERSION + 1))), code(MigrationErrorCode.Version));
    assert.throws(() => decodeHello(new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n')), code(MigrationErrorCode.Version));
    assert.throws(() => decodeHelloAck(bodyOf(encodeHelloAck(9))), code(MigrationErrorCode.Version));
    assert.throws(() => decodeHello(bodyOf(encodeHello({ ...hello, ip: '300.1.1.1' }))), code(MigrationErrorCode.Malformed));
    assert.throws(() => decodeHello(bodyOf(encodeHello({ ...hello, regions: [{ gpa: 100, size: 4096 }] }))), code(MigrationErrorCode.Malformed));
    assert.throws(() => decodeHello(bodyOf(encodeHello({ ...hello, regions: [] }))), code(MigrationErrorCode.Malformed));
    assert.throws(() => decodeHello(bodyOf(encodeHello({ ...hello, regions: [{ gpa: 2 ** 44, size: 4096 }] }))), code(MigrationErrorCode.Malformed));
  });

  it('PAGES: zero pages travel as 5 bytes; bad kinds and data lengths are MALFORMED', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ page: fc.nat(2 ** 32 - 1), fill: fc.nat(3) }), { minLength: 0, maxLength: 40 }), (pages) => {
        const batch = new PageBatch(9, 64);
        for (const p of pages) batch.add(p.page, new Uint8Array(PAGE_BYTES).fill(p.fill));
        const frame = batch.finish();
        const raw = pages.filter((p) => p.fill !== 0).length;
        assert.equal(frame.length, FRAME_HEADER_BYTES + 8 + 5 * pages.length + raw * PAGE_BYTES);
        const d = decodePages(bodyOf(frame));
        assert.equal(d.round, 9);
        assert.deepEqual([...d.pageNos], pages.map((p) => p.page));
        let r = 0;
        pages.forEach((p, i) => {
          assert.equal(d.kinds[i], p.fill === 0 ? 0 : 1);
          if (p.fill !== 0) assert.ok(d.data.subarray(r * PAGE_BYTES, ++r * PAGE_BYTES).every((x) => x === p.fill));
        });
      }),
      { numRuns: 100, seed: 11 },
    );
    const batch = new PageBatch(0, 4);
    batch.add(1, new Uint8Array(PAGE_BYTES).fill(1));
    batch.add(2, new Uint8Array(PAGE_BYTES));
    const body = bodyOf(batch.finish()).slice();
    const kinds = body.length - 2;
    body[kinds + 1] = 7;
    assert.throws(() => decodePages(body), code(MigrationErrorCode.Malformed));
    body[kinds + 1] = 1; // now claims two raw pages with one page of data
    assert.throws(() => decodePages(body), code(MigrationErrorCode.Malformed));
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(4, 0xffffffff, true);
    assert.throws(() => decodePages(huge), code(MigrationErrorCode.Malformed));
  });
});
