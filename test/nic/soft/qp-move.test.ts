// One QP's state saved, let go and loaded again (SoftRoce saveQp, detachQp, loadQp): how QP shards
// move a QP between threads (src/nic/shard). Here the QP leaves a provider in the middle of
// WRITEs and comes back to it, its traffic completing once and in order; and every state a
// provider should not take is refused with nothing kept.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoopbackHub } from '../../../src/net/loopback.js';
import { VerbsError, VerbsErrorCode } from '../../../src/nic/errors.js';
import { QpState, QpType } from '../../../src/nic/qp-state.js';
import { WrOpcode } from '../../../src/nic/types.js';
import { StateError } from '../../../src/state/index.js';
import { BUF_IOVA, assertOk, bytesAt, closeAll, completions, connectRc, fill, guest, pattern } from './fixtures.js';

const code = (c: VerbsErrorCode) => (e: unknown) => e instanceof VerbsError && e.code === c;

describe('moving one QP (saveQp, detachQp, loadQp)', () => {
  it('a QP saved, let go and loaded again mid-traffic completes every WRITE once, in order', async () => {
    const hub = new LoopbackHub();
    const a = guest(hub, '10.0.0.1');
    const b = guest(hub, '10.0.0.2');
    try {
      const [qa] = connectRc(a, b);
      const data = pattern(64 * 1024, 7);
      fill(a, 0, data);
      const post = (from: number, to: number) => {
        for (let k = from; k < to; k++) {
          a.dev.postSend(qa, [{ wrId: BigInt(k), opcode: WrOpcode.RdmaWrite, flags: 2, sgList: [{ addr: BUF_IOVA + k * 4096, length: 4096, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 1024 * 1024 + k * 4096, rkey: b.mr.rkey }]);
        }
      };
      post(0, 8);
      // Not suspended: it cannot be saved alone.
      assert.throws(() => a.dev.saveQp(qa), code(VerbsErrorCode.InvalidArgument));
      a.dev.suspendQp(qa, 'rnr-nak');
      const saved = a.dev.saveQp(qa);
      a.dev.detachQp(qa);
      assert.throws(() => a.dev.queryQp(qa), code(VerbsErrorCode.NoSuchObject));
      assert.equal(a.dev.loadQp(saved), qa);
      assert.equal(a.dev.queryQp(qa).qpState, QpState.Suspended);
      // Loaded twice: it is here already.
      assert.throws(() => a.dev.loadQp(saved), code(VerbsErrorCode.Exists));
      a.dev.resumeQp(qa);
      post(8, 16);
      const wcs = await completions(a, 16);
      assertOk(wcs);
      assert.deepEqual(wcs.map((w) => w.wrId), [...Array(16).keys()].map(BigInt), 'each WRITE completed once, in posting order');
      assert.deepEqual(bytesAt(b, 1024 * 1024, 64 * 1024), data);
    } finally {
      await closeAll(a, b);
    }
  });

  it('refuses a state that is not one QP of this device, or names what is not here, keeping nothing', async () => {
    const hub = new LoopbackHub();
    const a = guest(hub, '10.0.1.1');
    const b = guest(hub, '10.0.1.2');
    try {
      const [qa, qb] = connectRc(a, b);
      b.dev.suspendQp(qb, 'drop');
      // Another device's QP (another address).
      assert.throws(() => a.dev.loadQp(b.dev.saveQp(qb)), code(VerbsErrorCode.InvalidArgument));
      // A whole provider's state is not one QP.
      a.dev.suspendQp(qa, 'drop');
      assert.throws(() => a.dev.loadQp(a.dev.saveState()), code(VerbsErrorCode.InvalidArgument));
      // Damaged bytes.
      const saved = a.dev.saveQp(qa);
      const bad = saved.slice();
      bad[bad.length - 5] ^= 0xff;
      assert.throws(() => a.dev.loadQp(bad), StateError);
      assert.throws(() => a.dev.loadQp(saved.subarray(0, saved.length - 3)), StateError);
      // A QP whose CQ is gone: refused, and its number stays free.
      a.dev.detachQp(qa);
      a.dev.destroyCq(a.cq);
      assert.throws(() => a.dev.loadQp(saved), code(VerbsErrorCode.NoSuchObject));
      const cq = a.dev.createCq(16);
      const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
      assert.equal(a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: cq, recvCq: cq, cap, sigAll: true, qpn: qa }), qa);
    } finally {
      await closeAll(a, b);
    }
  });
});
