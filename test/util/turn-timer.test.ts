// TurnTimer: one pending callback, next turn or delayed, replaced and cancelled with the right
// kind. The regression it guards: a loop that cancelled a pending setTimeout with clearImmediate
// left Node unable to run any setImmediate callback again (a host process froze mid-traffic).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { TurnTimer } from '../../src/util/turn-timer.js';

/** The scenario in a worker thread: what it reports within 5 s. */
function scenario(kind: 'replace' | 'cancel'): Promise<string> {
  const worker = new Worker(new URL('./turn-timer-scenario.js', import.meta.url), { workerData: kind });
  return new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => resolve('no answer'), 5000);
    worker.once('message', (m: string) => {
      clearTimeout(t);
      resolve(m);
    });
    worker.once('error', reject);
  }).finally(() => worker.terminate());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('TurnTimer', () => {
  it('runs once at the next turn, or after a delay', async () => {
    let runs = 0;
    const timer = new TurnTimer(() => runs++);
    timer.soon();
    assert.equal(timer.pending, true);
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, 1);
    assert.equal(timer.pending, false);
    timer.after(5);
    await sleep(30);
    assert.equal(runs, 2);
  });

  it('replacing a pending delay with the next turn runs once, and other immediates still run', async () => {
    let runs = 0;
    const timer = new TurnTimer(() => runs++);
    timer.after(20);
    timer.soon();
    await sleep(40);
    assert.equal(runs, 1);
    assert.equal(await scenario('replace'), 'immediate ran');
  });

  it('cancelling a pending delay leaves setImmediate working', async () => {
    let runs = 0;
    const timer = new TurnTimer(() => runs++);
    timer.after(20);
    timer.cancel();
    assert.equal(timer.pending, false);
    timer.soon();
    timer.cancel();
    await sleep(40);
    assert.equal(runs, 0);
    assert.equal(await scenario('cancel'), 'immediate ran');
  });
});
