// A device's doorbell words in shared memory: per virtqueue a kick (driver -> device) and a call
// (device -> driver) counter, the device-wide wake and config-change doorbells, and a bitmap of
// queues kicked since the device last looked. The transport builds it in the device arena; a
// driver in another thread (src/backend/transport-proxy.ts) builds a second view over the same
// words, so its kicks reach a device loop that sleeps on `wake`.
import { Doorbell } from '../virtio/doorbell.js';

export class DoorbellBlock {
  readonly kicks: readonly Doorbell[];
  readonly calls: readonly Doorbell[];
  /** Rung on every kick and on device-side work (completions), so one loop can sleep on it. */
  readonly wake: Doorbell;
  /** Configuration change notifications (NEEDS_RESET, virtio 1.2 §2.1.2). */
  readonly configChange: Doorbell;
  private readonly pendingWords: Int32Array;

  /** The block's size for `numQueues` queues. */
  static bytes(numQueues: number): number {
    return (2 * numQueues + 2 + Math.ceil(numQueues / 32)) * 4;
  }

  /** A view of the block at `base` (4-byte aligned) in `buffer`; it does not clear it. */
  constructor(buffer: SharedArrayBuffer | ArrayBufferLike, readonly base: number, readonly numQueues: number) {
    if (!Number.isInteger(numQueues) || numQueues < 1) throw new RangeError(`a doorbell block needs queues, got ${numQueues}`);
    if (!Number.isInteger(base) || base < 0 || base + DoorbellBlock.bytes(numQueues) > buffer.byteLength) {
      throw new RangeError(`doorbell block at ${base} for ${numQueues} queues is outside the ${buffer.byteLength}-byte memory`);
    }
    const kicks: Doorbell[] = [];
    const calls: Doorbell[] = [];
    for (let q = 0; q < numQueues; q++) {
      kicks.push(new Doorbell(buffer, base + 8 * q));
      calls.push(new Doorbell(buffer, base + 8 * q + 4));
    }
    this.kicks = kicks;
    this.calls = calls;
    this.wake = new Doorbell(buffer, base + 8 * numQueues);
    this.configChange = new Doorbell(buffer, base + 8 * numQueues + 4);
    this.pendingWords = new Int32Array(buffer, base + 8 * numQueues + 8, Math.ceil(numQueues / 32));
  }

  /** The driver's notification: mark the queue, count the kick, wake the device loop. */
  kick(vq: number): void {
    this.setPending(vq);
    this.kicks[vq].notify();
    this.wake.notify();
  }

  /** Mark `vq` as needing service without a kick. */
  setPending(vq: number): void {
    Atomics.or(this.pendingWords, vq >> 5, 1 << (vq & 31));
  }

  /** Queues marked since the last call, in ascending order; clears them. */
  takePending(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.pendingWords.length; w++) {
      let bits = Atomics.exchange(this.pendingWords, w, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        out.push(w * 32 + b);
        bits &= bits - 1;
      }
    }
    return out;
  }

  clearPending(): void {
    for (let i = 0; i < this.pendingWords.length; i++) Atomics.store(this.pendingWords, i, 0);
  }
}
