import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { PackedQueue, type PackedQueueState } from '../../src/virtio/packed-queue.js';
import { kernelModule } from '../../src/wasm/loader.js';
import type { CrossThreadData, CrossThreadResult } from './packed-cross-thread.worker.js';

const MiB = 1024 * 1024;
const BUFFERS = 1_000_000;
const SIZE = 256;

function start(data: CrossThreadData): { worker: Worker; messages: Array<{ state?: PackedQueueState; result?: CrossThreadResult }>; next: () => Promise<{ state?: PackedQueueState; result?: CrossThreadResult }> } {
  const worker = new Worker(new URL('./packed-cross-thread.worker.js', import.meta.url), { workerData: data });
  const messages: Array<{ state?: PackedQueueState; result?: CrossThreadResult }> = [];
  const waiting: Array<(m: (typeof messages)[number]) => void> = [];
  let failure: unknown;
  worker.on('message', (m) => (waiting.length > 0 ? waiting.shift()!(m) : messages.push(m)));
  worker.on('error', (e) => {
    failure = e;
    while (waiting.length > 0) waiting.shift()!({ result: { role: data.role, count: -1, errors: [String(e)], sleeps: 0 } });
  });
  const next = () =>
    failure !== undefined
      ? Promise.resolve({ result: { role: data.role, count: -1, errors: [String(failure)], sleeps: 0 } })
      : messages.length > 0
        ? Promise.resolve(messages.shift()!)
        : new Promise<(typeof messages)[number]>((resolve) => waiting.push(resolve));
  return { worker, messages, next };
}

describe('packed ring across threads', () => {
  it(`a driver worker and a device worker (Wasm) move ${BUFFERS} buffers: none lost, duplicated or reordered`, async () => {
    const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
    dm.addRegion(0, 2 * MiB);
    const bells = dm.arena.alloc(64, 64);
    new Uint8Array(dm.memory.buffer, bells, 64).fill(0);
    const base: CrossThreadData = {
      role: 'driver',
      memory: dm.memory,
      layout: dm.layout,
      module: kernelModule(),
      kickOff: bells,
      callOff: bells + 16,
      buffers: BUFFERS,
      size: SIZE,
      ringGpa: 0x1000,
      ringBytes: 64 * 1024,
      dataGpa: 0x10_0000,
    };
    const driver = start(base);
    const { state } = await driver.next();
    assert.ok(state);
    const queue = PackedQueue.fromState(dm, state, 'wasm');
    const device = start({ ...base, role: 'device', handle: queue.handle() });
    const results = [(await driver.next()).result, (await device.next()).result];
    await Promise.all([driver.worker.terminate(), device.worker.terminate()]);
    for (const r of results) {
      assert.ok(r);
      assert.deepEqual(r.errors, [], `${r.role}`);
      assert.equal(r.count, BUFFERS, `${r.role} count`);
    }
    // The ring is drained: the device holds nothing, and both sides agree where they are.
    const s = queue.state();
    assert.equal(s.inflightSlots, 0);
    assert.equal(s.nextAvail, (BUFFERS * 2) % SIZE);
    assert.equal(s.availWrap, 1 ^ (Math.floor((BUFFERS * 2) / SIZE) & 1));
    console.log(JSON.stringify(results));
  });
});
