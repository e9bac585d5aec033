// Worker side of the cross-thread packed ring test (packed-cross-thread.test.ts): one worker is
// the guest driver, the other the device (Wasm kernels), sharing one device memory. Each buffer
// carries a sequence number; both sides check that every number arrives once and in order.
// node --test also runs this file as a test on the main thread, where it does nothing.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { PackedDriver } from '../../src/guest/packed-ring.js';
import { Arena } from '../../src/memory/arena.js';
import { gpa } from '../../src/memory/gpa.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import type { MemoryLayout } from '../../src/memory/layout.js';
import { Doorbell } from '../../src/virtio/doorbell.js';
import { PackedQueue, type PackedQueueHandle } from '../../src/virtio/packed-queue.js';

export interface CrossThreadData {
  role: 'driver' | 'device';
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
  module: WebAssembly.Module;
  /** Offsets of the kick (driver -> device) and call (device -> driver) doorbell words. */
  kickOff: number;
  callOff: number;
  buffers: number;
  size: number;
  /** Guest RAM the driver lays its ring out in, and the data buffers (16 bytes per slot). */
  ringGpa: number;
  ringBytes: number;
  dataGpa: number;
  /** Device only: the queue the main thread built. */
  handle?: PackedQueueHandle;
}

export interface CrossThreadResult {
  role: string;
  count: number;
  errors: string[];
  sleeps: number;
}

const WAIT_MS = 10_000;

function runDriver(d: CrossThreadData, port: NonNullable<typeof parentPort>): void {
  const guest = new GuestMemory(d.memory, d.layout);
  const driver = new PackedDriver(guest, new Arena(d.ringGpa, d.ringBytes), { size: d.size, eventIdx: true });
  const kick = new Doorbell(d.memory.buffer, d.kickOff);
  const call = new Doorbell(d.memory.buffer, d.callOff);
  port.postMessage({ state: driver.deviceState() });
  // Wait for the device to be attached before making buffers available.
  const start = new Int32Array(d.memory.buffer, d.callOff + 4, 1);
  Atomics.wait(start, 0, 0, WAIT_MS);
  const data = new DataView(d.memory.buffer, guest.translate(gpa(d.dataGpa), d.size * 16), d.size * 16);
  const seqById = new Float64Array(d.size);
  const errors: string[] = [];
  let sent = 0;
  let done = 0;
  let sleeps = 0;
  driver.disableUsedNotify();
  while (done < d.buffers && errors.length === 0) {
    let added = 0;
    while (sent < d.buffers) {
      // In-order completion keeps at most `size` buffers out, so slot sent % size is free again.
      const b = (sent % d.size) * 16;
      data.setFloat64(b, sent, true);
      data.setFloat64(b + 8, -1, true);
      const id = driver.add([{ gpa: d.dataGpa + b, len: 8 }], [{ gpa: d.dataGpa + b + 8, len: 8 }]);
      if (id === null) break;
      seqById[id] = sent++;
      added++;
    }
    if (added > 0 && driver.needsKick()) kick.notify();
    let got = 0;
    for (let u = driver.popUsed(); u !== null; u = driver.popUsed()) {
      const b = (done % d.size) * 16;
      const echoed = data.getFloat64(b + 8, true);
      if (seqById[u.id] !== done || echoed !== done || u.len !== 8) {
        errors.push(`used #${done}: id ${u.id} carried ${seqById[u.id]}, device echoed ${echoed}, len ${u.len}`);
        break;
      }
      done++;
      got++;
    }
    if (got === 0 && added === 0) {
      const seen = call.value();
      if (driver.enableUsedNotify()) {
        driver.disableUsedNotify();
        continue;
      }
      sleeps++;
      if (call.wait(seen, WAIT_MS) === 'timed-out') errors.push(`driver slept ${WAIT_MS} ms with ${sent - done} buffers out: lost notification`);
      driver.disableUsedNotify();
    }
  }
  port.postMessage({ result: { role: 'driver', count: done, errors, sleeps } satisfies CrossThreadResult });
}

function runDevice(d: CrossThreadData, port: NonNullable<typeof parentPort>): void {
  if (d.handle === undefined) throw new Error('device worker needs a queue handle');
  const queue = PackedQueue.attach(d.memory, d.handle, 'wasm', d.module);
  const kick = new Doorbell(d.memory.buffer, d.kickOff);
  const call = new Doorbell(d.memory.buffer, d.callOff);
  const view = new DataView(d.memory.buffer);
  const errors: string[] = [];
  let expected = 0;
  let sleeps = 0;
  queue.disableNotification();
  // Tell the driver the device is attached.
  const start = new Int32Array(d.memory.buffer, d.callOff + 4, 1);
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  while (expected < d.buffers && errors.length === 0) {
    const chains = queue.pop();
    if (chains.length === 0) {
      const seen = kick.value();
      if (queue.enableNotification()) {
        queue.disableNotification();
        continue;
      }
      sleeps++;
      if (kick.wait(seen, WAIT_MS) === 'timed-out') errors.push(`device slept ${WAIT_MS} ms at #${expected}: lost kick`);
      queue.disableNotification();
      continue;
    }
    for (const c of chains) {
      if (c.readSegments !== 1 || c.writeSegments !== 1) {
        errors.push(`chain #${expected} has ${c.readSegments}+${c.writeSegments} segments`);
        break;
      }
      const seq = view.getFloat64(c.segment(0).offset, true);
      if (seq !== expected) {
        errors.push(`popped ${seq}, expected ${expected}`);
        break;
      }
      view.setFloat64(c.segment(1).offset, seq, true);
      queue.addUsed(c, 8);
      expected++;
    }
    if (queue.flush()) call.notify();
  }
  port.postMessage({ result: { role: 'device', count: expected, errors, sleeps } satisfies CrossThreadResult });
}

if (!isMainThread && parentPort !== null && (workerData as CrossThreadData | undefined)?.role !== undefined) {
  const d = workerData as CrossThreadData;
  if (d.role === 'driver') runDriver(d, parentPort);
  else runDevice(d, parentPort);
}
