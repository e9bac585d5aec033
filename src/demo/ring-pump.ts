// The ring pump: a guest driver thread and a device thread sharing one device memory move
// numbered buffers through a virtqueue (split or packed) and check that none is lost, duplicated
// or reordered. It is the cross-thread proof of the virtqueue layer and, until the RDMA demo
// exists, what `vrdma demo` runs.
import { Worker } from 'node:worker_threads';
import { DeviceMemory } from '../memory/device-memory.js';
import type { RingFormat } from '../guest/ring.js';
import type { KernelEngine } from '../virtio/queue.js';
import { type AnyQueue, type QueueState, queueFromState, queueLocation } from '../virtio/queue-state.js';
import { kernelModule } from '../wasm/loader.js';
import type { PumpWorkerData, PumpWorkerResult } from './ring-pump-worker.js';

export interface PumpOptions {
  format: RingFormat;
  buffers: number;
  size?: number;
  engine?: KernelEngine;
}

export interface PumpReport {
  format: RingFormat;
  engine: KernelEngine;
  buffers: number;
  seconds: number;
  buffersPerSec: number;
  driverSleeps: number;
  deviceSleeps: number;
  /** The device queue's state at the end (its indices show every buffer went round). */
  finalState: QueueState;
}

const MiB = 1024 * 1024;

function start(data: PumpWorkerData, onState?: (state: QueueState) => void): Promise<PumpWorkerResult> {
  const worker = new Worker(new URL('./ring-pump-worker.js', import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.on('message', (msg: { state?: QueueState; result?: PumpWorkerResult }) => {
      if (msg.state) {
        try {
          onState?.(msg.state);
        } catch (err) {
          reject(err);
        }
      }
      if (msg.result) {
        if (msg.result.error) reject(new Error(`${data.role}: ${msg.result.error}`));
        else resolve(msg.result);
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`${data.role} thread exited with ${code} before reporting`)));
  });
}

export async function pumpBuffers(options: PumpOptions): Promise<PumpReport> {
  const engine = options.engine ?? 'wasm';
  const size = options.size ?? 256;
  const dm = DeviceMemory.create({ ramBytes: 2 * MiB, arenaBytes: 1 * MiB });
  dm.addRegion(0, 2 * MiB);
  const bellsOff = dm.arena.alloc(12, 8);
  const common = {
    format: options.format,
    engine,
    memory: dm.memory,
    layout: dm.layout,
    module: kernelModule(),
    bellsOff,
    buffers: options.buffers,
    size,
    guestBase: 0x1000,
    guestBytes: MiB,
  };
  let queue: AnyQueue | undefined;
  let device: Promise<PumpWorkerResult> | undefined;
  const started = performance.now();
  const driver = start({ ...common, role: 'driver' }, (state) => {
    // The device queue is built here, from the driver's state, then run in its own thread.
    queue = queueFromState(dm, state, engine);
    device = start({ ...common, role: 'device', where: queueLocation(queue) });
  });
  const driverResult = await driver;
  if (device === undefined || queue === undefined) throw new Error('the driver finished without offering its queue');
  const deviceResult = await device;
  const seconds = (performance.now() - started) / 1000;
  if (driverResult.moved !== options.buffers || deviceResult.moved !== options.buffers) {
    throw new Error(`moved ${driverResult.moved} (driver) and ${deviceResult.moved} (device) of ${options.buffers}`);
  }
  const finalState = { format: options.format, ...queue.state() } as QueueState;
  return {
    format: options.format,
    engine,
    buffers: options.buffers,
    seconds,
    buffersPerSec: options.buffers / seconds,
    driverSleeps: driverResult.sleeps,
    deviceSleeps: deviceResult.sleeps,
    finalState,
  };
}
