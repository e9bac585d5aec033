// The QP ownership words (src/nic/shard/qp-owners.ts): a QP changes hands only from its owner to
// MOVING to a taker, each step a compare-and-exchange that fails for anyone else; a slot names its
// QP, so another QPN on the same slot is neither read nor cleared; the table is shared memory
// that another thread sees and changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { OWNER_SLOTS, QpOwners } from '../../src/nic/shard/qp-owners.js';

describe('QP ownership words', () => {
  it('claim, give up, take and clear, each only from the state it expects', () => {
    const o = new QpOwners();
    assert.equal(o.owner(0x123), null);
    assert.ok(o.claim(0x123, 2));
    assert.ok(o.claim(0x123, 2), 'claiming its own again is no change');
    assert.equal(o.claim(0x123, 1), false);
    assert.equal(o.owner(0x123), 2);
    assert.equal(o.giveUp(0x123, 1), false, 'only the owner gives it up');
    assert.equal(o.take(0x123, 1), false, 'nobody takes a QP that is not moving');
    assert.ok(o.giveUp(0x123, 2));
    assert.equal(o.owner(0x123), 'moving');
    assert.ok(o.take(0x123, 0));
    assert.equal(o.take(0x123, 1), false, 'a second taker loses');
    assert.equal(o.owner(0x123), 0);
    // Another QPN on the same slot is not this one.
    const other = 0x123 + OWNER_SLOTS;
    assert.equal(o.owner(other), null);
    assert.equal(o.free(other), false);
    assert.equal(o.claim(other, 0), false);
    o.clear(other);
    assert.equal(o.owner(0x123), 0, 'clearing another QPN leaves the slot alone');
    o.clear(0x123);
    assert.equal(o.owner(0x123), null);
    assert.ok(o.free(other));
    assert.ok(o.claim(0xffffff, 63), 'the largest QPN and shard');
    assert.equal(o.owner(0xffffff), 63);
    assert.throws(() => new QpOwners(new SharedArrayBuffer(16)), RangeError);
  });

  it('another thread sees a move and can take the QP', async () => {
    const o = new QpOwners();
    assert.ok(o.claim(77, 0));
    assert.ok(o.giveUp(77, 0));
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const w = new Int32Array(workerData);
      const moving = ((77 << 8) | 0xff) | 0;
      parentPort.postMessage(Atomics.compareExchange(w, 77, moving, ((77 << 8) | 2) | 0) === moving);`;
    const took = await new Promise<boolean>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: o.buffer });
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.ok(took);
    assert.equal(o.owner(77), 1);
  });
});
