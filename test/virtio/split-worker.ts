// Worker side of the cross-thread split ring test (split-threads.test.ts): one thread is the
// guest driver, another the device, sharing one device memory. Each buffer carries a sequence
// number; the device checks it arrives in order and echoes it into the writable part, the driver
// checks the used entries come back in order with the echo. Idle threads sleep on doorbells.
// Imported as a plain module (the test runner loads every file) it does nothing.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SplitRingDriver } from '../../src/guest/split-ring.js';
import { Arena } from '../../src/memory/arena.js';
import { gpa } from '../../src/memory/gpa.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import type { MemoryLayout } from '../../src/memory/layout.js';
import { Doorbell } from '../../src/virtio/doorbell.js';
import { SplitQueue, type SplitQueuePlacement } from '../../src/virtio/split-queue.js';
import { instantiateKernels } from '../../src/wasm/loader.js';

export interface SplitWorkerData {
  role: 'driver' | 'device';
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
  module: WebAssembly.Module;
  kickOff: number;
  callOff: number;
  total: number;
  size: number;
  /** Guest-physical area the driver allocates its rings and buffers from. */
  guestBase: number;
  guestBytes: number;
  /** Device only: the queue main set up from the driver's state. */
  placement?: SplitQueuePlacement;
}

/** What a worker reports when done. */
export interface SplitWorkerResult {
  role: string;
  moved: number;
  sleeps: number;
  error?: string;
}

const SLEEP_LIMIT_MS = 10_000;

function runDriver(data: SplitWorkerData): SplitWorkerResult {
  const guest = new GuestMemory(data.memory, data.layout);
  const alloc = new Arena(data.guestBase, data.guestBytes);
  const driver = SplitRingDriver.create<number>(guest, alloc, { size: data.size, eventIdx: true });
  // Main sets the device side up from this state; buffers offered meanwhile simply wait.
  parentPort!.postMessage({ state: driver.initialDeviceState() });
  const kick = new Doorbell(data.memory.buffer, data.kickOff);
  const call = new Doorbell(data.memory.buffer, data.callOff);
  // Buffer n uses slot n % size: [seq u32][pad][echo u32][pad]. Completions come in order and at
  // most size / 2 chains are out, so no slot in use is reused.
  const slots = alloc.alloc(16 * data.size, 16);
  let sent = 0;
  let received = 0;
  let sleeps = 0;
  while (received < data.total) {
    let added = 0;
    while (sent < data.total && driver.numFree >= 2) {
      const slot = gpa(slots + 16 * (sent % data.size));
      guest.writeU32(slot, sent);
      guest.writeU32(gpa(slot + 8), 0);
      const head = driver.add([{ gpa: slot, len: 4 }], [{ gpa: slot + 8, len: 4 }], sent);
      if (head < 0) break;
      sent++;
      added++;
    }
    if (added > 0 && driver.publish()) kick.notify();
    const used = driver.collect();
    for (const u of used) {
      if (u.token !== received) throw new Error(`used entry ${u.token} arrived when ${received} was due`);
      const echo = guest.readU32(gpa(slots + 16 * (received % data.size) + 8));
      if (u.len !== 4 || echo !== (received ^ 0x5a5a5a5a)) throw new Error(`buffer ${received}: len ${u.len}, echo ${echo}`);
      received++;
    }
    if (used.length === 0 && added === 0) {
      const seen = call.value();
      if (driver.enableCallbacks()) continue;
      sleeps++;
      if (call.wait(seen, SLEEP_LIMIT_MS) === 'timed-out') throw new Error(`driver stalled at ${received}/${data.total}`);
    }
  }
  return { role: 'driver', moved: received, sleeps };
}

function runDevice(data: SplitWorkerData): SplitWorkerResult {
  const guest = new GuestMemory(data.memory, data.layout);
  const queue = SplitQueue.attach(guest, data.placement!, 'wasm', instantiateKernels(data.memory, data.module), 'threads');
  const kick = new Doorbell(data.memory.buffer, data.kickOff);
  const call = new Doorbell(data.memory.buffer, data.callOff);
  const view = guest.view;
  let expected = 0;
  let sleeps = 0;
  while (expected < data.total) {
    const chains = queue.pop();
    if (chains.length === 0) {
      const seen = kick.value();
      if (queue.enableNotification()) continue;
      sleeps++;
      if (kick.wait(seen, SLEEP_LIMIT_MS) === 'timed-out') throw new Error(`device stalled at ${expected}/${data.total}`);
      queue.disableNotification();
      continue;
    }
    for (const chain of chains) {
      if (chain.readSegments !== 1 || chain.writeSegments !== 1) throw new Error(`chain ${chain.id} has the wrong shape`);
      const seq = view.getUint32(chain.segment(0).offset, true);
      if (seq !== expected) throw new Error(`device saw buffer ${seq} when ${expected} was due`);
      view.setUint32(chain.segment(1).offset, seq ^ 0x5a5a5a5a, true);
      queue.addUsed(chain, 4);
      expected++;
    }
    if (queue.flush()) call.notify();
  }
  return { role: 'device', moved: expected, sleeps };
}

if (!isMainThread && parentPort !== null && (workerData as SplitWorkerData | undefined)?.role !== undefined) {
  const data = workerData as SplitWorkerData;
  let result: SplitWorkerResult;
  try {
    result = data.role === 'driver' ? runDriver(data) : runDevice(data);
  } catch (err) {
    result = { role: data.role, moved: -1, sleeps: 0, error: (err as Error).stack ?? String(err) };
  }
  parentPort.postMessage({ result });
}
