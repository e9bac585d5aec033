// The event virtqueue (docs/device-spec.md §12): asynchronous events, one 16-byte record per
// device-writable buffer. Without a buffer an event waits; at most one pending event per
// (type, handle) is kept, so the backlog is bounded and no distinct event is lost.
import type { WriteLog } from '../memory/write-log.js';
import type { DeviceQueue } from '../virtio/queue.js';
import { EVENT_BYTES, EventType } from './abi.js';

export class EventQueue {
  /** Pending events in raise order, keyed by type and handle. */
  private readonly pending = new Map<string, { type: EventType; handle: number }>();
  /** Events written, for tests and logs. */
  written = 0;

  constructor(public enabled: boolean) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  raise(type: EventType, handle: number): void {
    if (!this.enabled) return;
    const key = `${type}:${handle >>> 0}`;
    if (!this.pending.has(key)) this.pending.set(key, { type, handle: handle >>> 0 });
  }

  /**
   * Write pending events into available buffers; returns true if any buffer was used. A buffer
   * shorter than 16 bytes is returned with length 0 and the event stays pending.
   */
  drain(queue: DeviceQueue | null, memory: Uint8Array, log: WriteLog): boolean {
    if (queue === null || this.pending.size === 0) return false;
    let used = false;
    const record = new Uint8Array(EVENT_BYTES);
    const view = new DataView(record.buffer);
    for (let round = 0; round <= queue.size && this.pending.size > 0; round++) {
      const chains = queue.pop(this.pending.size);
      if (chains.length === 0) {
        // Events wait: ask for a kick when buffers come (virtio 1.2 2.7.10).
        if (queue.enableNotification()) continue;
        break;
      }
      used = true;
      for (const chain of chains) {
        const next = this.pending.entries().next();
        if (next.done === true || chain.writeBytes < EVENT_BYTES) {
          queue.addUsed(chain, 0);
          continue;
        }
        const [key, event] = next.value;
        record.fill(0);
        view.setUint32(0, event.type, true);
        view.setUint32(4, event.handle, true);
        chain.writer(memory).write(record, log);
        queue.addUsed(chain, EVENT_BYTES);
        this.pending.delete(key);
        this.written++;
      }
    }
    return used;
  }

  clear(): void {
    this.pending.clear();
    this.written = 0;
  }
}
