// FdWatch (native/src/fd_watch.cc): an fd's input readiness on the event loop, level-triggered,
// as BatchedUdpLink's readiness 'loop' uses it. Callbacks come while input is left unread and stop
// once it is read or the watch stops; a callback that throws is an uncaught exception of its
// thread; and worker threads terminated while datagrams arrive on a socket they watch this way
// leave the process running (a dgram socket in the same place could abort Node 20). Addresses
// 127.0.45.20-59.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { withNative } from './with-native.js';

const WORKER = new URL('./fd-watch-worker.js', import.meta.url);

describe('FdWatch', () => {
  it('calls while input is unread, stops once it is read, and after stop()', withNative(async (addon) => {
    const fd = addon.eventfdCreate(0);
    let calls = 0;
    let drain = false;
    const watch = new addon.FdWatch(fd, () => {
      calls++;
      if (drain) addon.eventfdRead(fd);
    });
    try {
      await sleep(30);
      assert.equal(calls, 0, 'nothing to read, no call');
      addon.eventfdWrite(fd, 1);
      await sleep(30);
      assert.ok(calls >= 2, `left unread, it is called again on later turns (${calls})`);
      drain = true;
      await sleep(30);
      const settled = calls;
      await sleep(30);
      assert.equal(calls, settled, 'read, no more calls');
      watch.stop();
      addon.eventfdWrite(fd, 1);
      await sleep(30);
      assert.equal(calls, settled, 'stopped, no more calls');
      watch.stop();
    } finally {
      addon.closeFd(fd);
    }
    assert.throws(() => new addon.FdWatch(fd, () => {}), 'a closed fd');
    assert.throws(() => new addon.FdWatch(-1, () => {}), RangeError);
    assert.throws(() => new (addon.FdWatch as unknown as new (fd: number, f: unknown) => unknown)(0, 'not a function'), TypeError);
  }));

  it('a callback that throws is an uncaught exception of its thread', withNative(async () => {
    const worker = new Worker(WORKER, { workerData: { fdWatchTest: true, mode: 'throw' } });
    const err = await new Promise<Error>((resolve) => worker.once('error', resolve));
    assert.match(err.message, /thrown from an FdWatch callback/);
    await worker.terminate();
  }));

  it('terminating 40 workers while datagrams arrive on sockets they watch leaves the process running', withNative(async (addon) => {
    const tx = dgram.createSocket('udp4');
    const payload = Buffer.alloc(64);
    try {
      for (let round = 0; round < 40; round++) {
        const ip = `127.0.45.${20 + round}`;
        const worker = new Worker(WORKER, { workerData: { fdWatchTest: true, mode: 'receive', ip } });
        const { fd } = await new Promise<{ fd: number }>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
        let sending = true;
        const flood = (): void => {
          if (!sending) return;
          for (let i = 0; i < 100; i++) tx.send(payload, 4791, ip);
          setImmediate(flood);
        };
        flood();
        await sleep(2 + (round % 10) * 2);
        await worker.terminate();
        sending = false;
        // The watch was stopped with the thread; the socket, the addon's, is the process's to close.
        addon.closeFd(fd);
      }
    } finally {
      tx.close();
    }
  }));
});
