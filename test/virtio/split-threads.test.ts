import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { SplitQueue, type SplitQueueState } from '../../src/virtio/split-queue.js';
import { kernelModule } from '../../src/wasm/loader.js';
import type { SplitWorkerData, SplitWorkerResult } from './split-worker.js';

const MiB = 1024 * 1024;
const TOTAL = 1_000_000;
const SIZE = 256;

function start(data: SplitWorkerData, onState?: (state: SplitQueueState) => void): Promise<SplitWorkerResult> {
  const worker = new Worker(new URL('./split-worker.js', import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.on('message', (msg: { state?: SplitQueueState; result?: SplitWorkerResult }) => {
      if (msg.state) onState?.(msg.state);
      if (msg.result) resolve(msg.result);
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`${data.role} worker exited with ${code} before reporting`)));
  });
}

describe('split ring across threads', () => {
  it(`moves ${TOTAL.toLocaleString('en-US')} buffers from a driver thread to a device thread and back, in order`, async () => {
    const dm = DeviceMemory.create({ ramBytes: 2 * MiB, arenaBytes: 1 * MiB });
    dm.addRegion(0, 2 * MiB);
    const bells = dm.arena.alloc(8, 8);
    const common = { memory: dm.memory, layout: dm.layout, module: kernelModule(), kickOff: bells, callOff: bells + 4, total: TOTAL, size: SIZE, guestBase: 0x1000, guestBytes: MiB };
    let device: Promise<SplitWorkerResult> | undefined;
    let queue: SplitQueue | undefined;
    const driver = start({ ...common, role: 'driver' }, (state) => {
      // The device side is built here, from the driver's state, then run in its own thread.
      queue = SplitQueue.fromState(dm, state, 'wasm');
      device = start({ ...common, role: 'device', placement: queue.placement() });
    });
    const driverResult = await driver;
    assert.ok(device);
    const deviceResult = await device;
    assert.equal(driverResult.error, undefined);
    assert.equal(deviceResult.error, undefined);
    assert.equal(driverResult.moved, TOTAL);
    assert.equal(deviceResult.moved, TOTAL);
    const state = queue!.state();
    assert.equal(state.nextAvail, TOTAL & 0xffff);
    assert.equal(state.nextUsed, TOTAL & 0xffff);
    console.log(`# sleeps: driver ${driverResult.sleeps}, device ${deviceResult.sleeps}`);
  });
});
