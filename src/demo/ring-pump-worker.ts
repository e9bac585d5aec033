// One side of the ring pump (ring-pump.ts): the guest driver or the device, in its own thread,
// sharing the device memory. Buffer n carries n; the device checks the order and writes back
// n ^ ECHO_MASK; the driver checks every used buffer comes back once, in order, with its echo.
// Idle threads sleep on doorbells. Loaded on the main thread (as the test runner does), it does
// nothing.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Arena } from '../memory/arena.js';
import { gpa } from '../memory/gpa.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { MemoryLayout } from '../memory/layout.js';
import { createGuestRing, type RingFormat } from '../guest/ring.js';
import { Doorbell } from '../virtio/doorbell.js';
import type { KernelEngine } from '../virtio/queue.js';
import { type QueueLocation, attachQueue } from '../virtio/queue-state.js';

export interface PumpWorkerData {
  role: 'driver' | 'device';
  format: RingFormat;
  engine: KernelEngine;
  memory: WebAssembly.Memory;
  layout: MemoryLayout;
  module: WebAssembly.Module;
  /** Doorbell words: kick (driver -> device), call (device -> driver), ready (device attached). */
  bellsOff: number;
  buffers: number;
  size: number;
  /** Guest RAM the driver lays its ring and data slots out in. */
  guestBase: number;
  guestBytes: number;
  /** Device only: the queue the main thread built from the driver's state. */
  where?: QueueLocation;
}

export interface PumpWorkerResult {
  role: 'driver' | 'device';
  moved: number;
  sleeps: number;
  error?: string;
}

const ECHO_MASK = 0x5a5a5a5a;
const STALL_MS = 10_000;

function bells(d: PumpWorkerData): { kick: Doorbell; call: Doorbell; ready: Doorbell } {
  return {
    kick: new Doorbell(d.memory.buffer, d.bellsOff),
    call: new Doorbell(d.memory.buffer, d.bellsOff + 4),
    ready: new Doorbell(d.memory.buffer, d.bellsOff + 8),
  };
}

function runDriver(d: PumpWorkerData): PumpWorkerResult {
  const guest = new GuestMemory(d.memory, d.layout);
  const alloc = new Arena(d.guestBase, d.guestBytes);
  const ring = createGuestRing<number>(d.format, guest, alloc, { size: d.size, eventIdx: true });
  const { kick, call, ready } = bells(d);
  parentPort!.postMessage({ state: ring.deviceState() });
  if (ready.value() === 0 && ready.wait(0, STALL_MS) === 'timed-out') throw new Error('the device never attached');
  // Buffer n uses slot n % size: [seq u32][pad][echo u32][pad]. Buffers complete in order and at
  // most `size` are out, so a slot is free again by the time it comes round.
  const slots = alloc.alloc(16 * d.size, 16);
  const view = new DataView(d.memory.buffer, guest.translate(gpa(slots), 16 * d.size), 16 * d.size);
  let sent = 0;
  let received = 0;
  let sleeps = 0;
  ring.disableUsedNotify();
  while (received < d.buffers) {
    let added = 0;
    while (sent < d.buffers) {
      const slot = 16 * (sent % d.size);
      view.setUint32(slot, sent, true);
      view.setUint32(slot + 8, 0, true);
      if (!ring.offer([{ gpa: slots + slot, len: 4 }], [{ gpa: slots + slot + 8, len: 4 }], sent)) break;
      sent++;
      added++;
    }
    if (added > 0 && ring.publish()) kick.notify();
    const used = ring.takeUsed();
    for (const u of used) {
      const echo = view.getUint32(16 * (received % d.size) + 8, true);
      if (u.token !== received || u.len !== 4 || echo !== (received ^ ECHO_MASK) >>> 0) {
        throw new Error(`used buffer ${u.token} (len ${u.len}, echo ${echo}) arrived when ${received} was due`);
      }
      received++;
    }
    if (used.length === 0 && added === 0) {
      const seen = call.value();
      if (ring.enableUsedNotify()) {
        ring.disableUsedNotify();
        continue;
      }
      sleeps++;
      if (call.wait(seen, STALL_MS) === 'timed-out') throw new Error(`driver stalled at ${received}/${d.buffers}: lost notification`);
      ring.disableUsedNotify();
    }
  }
  return { role: 'driver', moved: received, sleeps };
}

function runDevice(d: PumpWorkerData): PumpWorkerResult {
  const guest = new GuestMemory(d.memory, d.layout);
  const queue = attachQueue(guest, d.where!, d.engine, d.module);
  const { kick, call, ready } = bells(d);
  const view = guest.view;
  let expected = 0;
  let sleeps = 0;
  queue.disableNotification();
  ready.notify();
  while (expected < d.buffers) {
    const chains = queue.pop();
    if (chains.length === 0) {
      const seen = kick.value();
      if (queue.enableNotification()) {
        queue.disableNotification();
        continue;
      }
      sleeps++;
      if (kick.wait(seen, STALL_MS) === 'timed-out') throw new Error(`device stalled at ${expected}/${d.buffers}: lost kick`);
      queue.disableNotification();
      continue;
    }
    for (const chain of chains) {
      if (chain.readSegments !== 1 || chain.writeSegments !== 1) throw new Error(`chain ${chain.id} has the wrong shape`);
      const seq = view.getUint32(chain.segment(0).offset, true);
      if (seq !== expected) throw new Error(`device saw buffer ${seq} when ${expected} was due`);
      view.setUint32(chain.segment(1).offset, (seq ^ ECHO_MASK) >>> 0, true);
      queue.addUsed(chain, 4);
      expected++;
    }
    if (queue.flush()) call.notify();
  }
  return { role: 'device', moved: expected, sleeps };
}

if (!isMainThread && parentPort !== null && (workerData as PumpWorkerData | undefined)?.role !== undefined) {
  const data = workerData as PumpWorkerData;
  let result: PumpWorkerResult;
  try {
    result = data.role === 'driver' ? runDriver(data) : runDevice(data);
  } catch (err) {
    result = { role: data.role, moved: -1, sleeps: 0, error: (err as Error).stack ?? String(err) };
  }
  parentPort.postMessage({ result });
}
