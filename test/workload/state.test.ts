// The workload's state blob: it round-trips, and anything truncated, foreign, of another
// version or inconsistent is refused with BAD_STATE before anything is built from it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_WORKLOAD, checkConfig } from '../../src/workload/config.js';
import { WorkloadError, WorkloadErrorCode } from '../../src/workload/errors.js';
import { type WorkloadState, decodeState, encodeState, fromState } from '../../src/workload/state.js';

function sample(): WorkloadState {
  const config = { ...DEFAULT_WORKLOAD, qps: 2 };
  return {
    version: 1, config, side: 1, areaGpa: 0x800000, lkey: 0x1234, cqn: 3, peer: { areaGpa: 0x900000, rkey: 0x4321 },
    qps: [
      { qpn: 17, sendPosted: 1027, sendCompleted: 1024, recvPosted: 530, recvCompleted: 520, bytesCompleted: 3_000_000, byStatus: { 0: 1544 } },
      { qpn: 18, sendPosted: 8, sendCompleted: 8, recvPosted: 16, recvCompleted: 0, bytesCompleted: 8192, byStatus: {} },
    ],
    violations: [{ qp: 1, what: 'fetch-add 3 returned 4' }], violationCount: 2,
  };
}

const refused = (f: () => unknown, pattern: RegExp) =>
  assert.throws(f, (err: unknown) => err instanceof WorkloadError && err.code === WorkloadErrorCode.BadState && pattern.test(err.message));

describe('workload state blob', () => {
  it('round-trips and stays small', () => {
    const s = sample();
    const blob = encodeState(s);
    assert.ok(blob.length < 1024);
    assert.deepEqual(decodeState(blob), s);
  });

  it('refuses foreign, truncated and other-version blobs', () => {
    const blob = encodeState(sample());
    refused(() => decodeState(new Uint8Array(0)), /not a workload state/);
    refused(() => decodeState(Uint8Array.of(1, 2, 3, 4, 5)), /not a workload state/);
    refused(() => decodeState(blob.subarray(0, blob.length - 5)), /unreadable/);
    const other = blob.slice();
    other[3] = 9;
    refused(() => decodeState(other), /version 9/);
  });

  it('refuses inconsistent states', () => {
    const cases: [(s: WorkloadState) => void, RegExp][] = [
      [(s) => (s.qps[0].sendPosted = s.qps[0].sendCompleted + s.config.window + 1), /sendPosted/],
      [(s) => (s.qps[0].sendPosted = s.qps[0].sendCompleted - 1), /sendPosted/],
      [(s) => (s.qps[1].recvPosted = s.config.recvDepth + 1), /recvPosted/],
      [(s) => s.qps.pop(), /list 2 QPs/],
      [(s) => (s.qps[1].qpn = 17), /share a QPN/],
      [(s) => (s.config.slots = 7), /config/],
      [(s) => (s.side = 2), /side/],
      [(s) => (s.violationCount = 0), /violationCount/],
      [(s) => ((s.qps[0].byStatus as Record<string, unknown>).x = 1), /byStatus/],
      [(s) => ((s as unknown as Record<string, unknown>).peer = 5), /peer/],
    ];
    for (const [mutate, pattern] of cases) {
      const s = structuredClone(sample());
      mutate(s);
      refused(() => fromState(JSON.parse(JSON.stringify(s))), pattern);
    }
  });

  it('never throws anything but BAD_STATE on random bytes after the magic', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        const blob = new Uint8Array(4 + tail.length);
        blob.set([0x56, 0x57, 0x4c, 1]);
        blob.set(tail, 4);
        try {
          decodeState(blob);
        } catch (err) {
          assert.ok(err instanceof WorkloadError && err.code === WorkloadErrorCode.BadState);
        }
      }),
    );
  });

  it('checks configurations', () => {
    assert.throws(() => checkConfig({ ...DEFAULT_WORKLOAD, window: DEFAULT_WORKLOAD.slots + 1 }), /window/);
    assert.throws(() => checkConfig({ ...DEFAULT_WORKLOAD, qps: 0 }), /qps/);
    assert.equal(checkConfig(DEFAULT_WORKLOAD), DEFAULT_WORKLOAD);
  });
});
