// The cross-thread proof of the virtqueue layer: a driver thread and a device thread share one
// device memory and move a million numbered buffers through each ring format. The pump's
// workers check order and echo on both sides; here we check the totals and the ring indices.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pumpBuffers } from '../../src/demo/ring-pump.js';

const BUFFERS = 1_000_000;

describe('virtqueues across threads', () => {
  for (const format of ['split', 'packed'] as const) {
    it(`moves ${BUFFERS.toLocaleString('en-US')} buffers through a ${format} ring between two threads, none lost, duplicated or reordered`, async () => {
      const report = await pumpBuffers({ format, buffers: BUFFERS, size: 256 });
      assert.equal(report.buffers, BUFFERS);
      const s = report.finalState;
      if (s.format === 'split') {
        assert.equal(s.nextAvail, BUFFERS & 0xffff);
        assert.equal(s.nextUsed, BUFFERS & 0xffff);
      } else {
        // Every chain takes two slots (one readable, one writable descriptor): both positions
        // advanced by 2 * BUFFERS around the ring, and nothing is left in flight.
        assert.equal(s.nextAvail, (2 * BUFFERS) % 256);
        assert.equal(s.nextUsed, (2 * BUFFERS) % 256);
        assert.equal(s.availWrap, 1 ^ (Math.floor((2 * BUFFERS) / 256) & 1));
        assert.equal(s.inflightSlots, 0);
      }
    });
  }

  it('reports a thread that fails (here: a queue size split rings cannot have) instead of hanging', async () => {
    await assert.rejects(pumpBuffers({ format: 'split', buffers: 10, size: 3 }), /power of 2|size/i);
  });
});
