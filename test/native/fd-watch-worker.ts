// A worker for fd-watch.test.ts: a BatchedUdpLink watched from this thread's loop (FdWatch) on the
// address it is given, counting what arrives, or (throw) a watch whose callback throws. Does
// nothing when imported.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BatchedUdpLink } from '../../src/net/batched-udp-link.js';
import { nativeStatus } from '../../src/native/addon.js';

if (!isMainThread && parentPort !== null && (workerData as { fdWatchTest?: boolean } | null)?.fdWatchTest === true) {
  const data = workerData as { ip: string; mode: 'receive' | 'throw' };
  const port = parentPort;
  if (data.mode === 'throw') {
    const status = nativeStatus();
    if (!status.available) throw new Error(status.reason);
    const fd = status.addon.eventfdCreate(1);
    new status.addon.FdWatch(fd, () => {
      throw new Error('thrown from an FdWatch callback');
    });
  } else {
    const link = await BatchedUdpLink.open({ ip: data.ip, port: 4791, readiness: 'loop' });
    link.onPacket(() => {});
    port.postMessage({ fd: link.socketFd });
  }
}
