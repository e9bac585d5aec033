// Run in a worker thread by turn-timer.test.ts (its own event loop, so a frozen one cannot take
// the test runner with it): arm a delay, replace or cancel it, then see whether setImmediate
// still runs. Posts 'immediate ran' or 'immediate starved'. Does nothing on the main thread.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TurnTimer } from '../../src/util/turn-timer.js';

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const timer = new TurnTimer(() => {});
  timer.after(50);
  if (workerData === 'replace') timer.soon();
  else timer.cancel();
  const starved = setTimeout(() => port.postMessage('immediate starved'), 300);
  setImmediate(() => {
    clearTimeout(starved);
    timer.cancel();
    port.postMessage('immediate ran');
  });
}
