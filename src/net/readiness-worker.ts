// The worker side of ReadinessWatcher (readiness.ts): poll the fd, signal the main thread once
// per arming, sleep while it drains, exit on STOP.
import { parentPort, workerData } from 'node:worker_threads';
import { requireNative } from '../native/addon.js';
import { POLL_SLICE_MS, READY_ARMED, READY_SIGNALLED, READY_STOP, type ReadinessWorkerData } from './readiness.js';

const { fd, control } = workerData as ReadinessWorkerData;
const ctl = new Int32Array(control);
const native = requireNative();
const { POLLIN, POLLERR, POLLHUP } = native.poll;
const port = parentPort!;
port.postMessage('started');

for (;;) {
  const state = Atomics.load(ctl, 0);
  if (state === READY_STOP) break;
  if (state === READY_SIGNALLED) {
    Atomics.wait(ctl, 0, READY_SIGNALLED);
    continue;
  }
  const revents = native.pollFd(fd, POLLIN, POLL_SLICE_MS);
  if ((revents & (POLLIN | POLLERR | POLLHUP)) !== 0 && Atomics.compareExchange(ctl, 0, READY_ARMED, READY_SIGNALLED) === READY_ARMED) {
    port.postMessage(0);
  }
}
port.close();
