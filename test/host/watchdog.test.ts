// The pool's hang watchdog on fake threads: one that never answers is reported once, after
// hangMs; ones that answer are left alone, even when this (the main) thread itself is held up
// longer than hangMs while their pings are in flight.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { HangWatchdog, type WatchedThread } from '../../src/host/pool/watchdog.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('hang watchdog', () => {
  it('reports a thread that leaves a ping unanswered for hangMs, once', async () => {
    const hung: [number, number][] = [];
    let threads: WatchedThread[] = [
      { threadId: 1, ping: () => new Promise(() => {}) },
      { threadId: 2, ping: () => sleep(5) },
    ];
    const started = performance.now();
    const dog = new HangWatchdog(200, () => threads, (id, ms) => {
      hung.push([id, ms]);
      threads = threads.filter((t) => t.threadId !== id);
    });
    try {
      await sleep(900);
    } finally {
      dog.stop();
    }
    assert.equal(hung.length, 1, JSON.stringify(hung));
    assert.equal(hung[0][0], 1);
    assert.ok(hung[0][1] >= 200, `silent ${hung[0][1]} ms`);
    assert.ok(performance.now() - started >= 200);
  });

  it('does not blame the workers for a stall of its own thread', async () => {
    // A worker's answer comes as a port message, read after timers in a turn of the loop: after
    // this thread was held up, the watchdog's check runs before the answer is read.
    const { port1, port2 } = new MessageChannel();
    port2.on('message', (m) => setTimeout(() => port2.postMessage(m), 30));
    let pings = 0;
    const ping = () => new Promise((resolve) => {
      pings++;
      port1.once('message', resolve);
      port1.postMessage(pings);
    });
    const hung: number[] = [];
    const dog = new HangWatchdog(200, () => [{ threadId: 7, ping }], (id) => hung.push(id));
    try {
      await sleep(60);
      // Hold this thread for three times hangMs with a ping in flight.
      const until = performance.now() + 600;
      while (performance.now() < until);
      await sleep(400);
    } finally {
      dog.stop();
      port1.close();
    }
    assert.deepEqual(hung, []);
    assert.ok(pings >= 3, `${pings} pings`);
  });
});
