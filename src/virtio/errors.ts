// The virtio layer's one error type. A ring the driver broke raises VirtioError; the device that
// owns the queue then sets NEEDS_RESET on itself alone (virtio 1.2 2.1.2) and serves no more
// requests from it until reset.
import { statusMessage, statusName } from '../wasm/status.js';

export class VirtioError extends Error {
  override readonly name = 'VirtioError';
  /** `status` is a kernel status code (assembly/status.ts). */
  constructor(readonly status: number, readonly queue: string) {
    super(`${queue}: ${statusName(status)}: ${statusMessage(status)}`);
  }
}
