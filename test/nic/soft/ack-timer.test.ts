// The pieces of the local ACK timer, each on its own with a clock and counters the test moves:
// device time that leaves out stalls of the loop (run-clock.ts), the wait for a turn without
// input before a verdict (input-drain.ts), the retransmission backoff (timers.ts), and the
// kernel's per-socket drop counter (kernel-drops.ts).
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { udpSocketDrops } from '../../../src/net/kernel-drops.js';
import { localAckTimeoutUs, retryIntervalUs } from '../../../src/nic/roce/timers.js';
import { InputDrain } from '../../../src/nic/soft/input-drain.js';
import { RunClock } from '../../../src/nic/soft/run-clock.js';

describe('RunClock', () => {
  it('counts gaps beyond a tick as stalls only while held', () => {
    let wall = 1000;
    const c = new RunClock(1, () => wall);
    wall += 500; // idle, nobody holding: not a stall
    assert.equal(c.nowMs(), 1500);
    c.hold();
    for (let i = 0; i < 10; i++) {
      wall += 0.5;
      c.nowMs();
    }
    assert.equal(c.discountedMs, 0);
    wall += 50; // the loop did not run for 50 ms
    assert.equal(c.nowMs(), 1505 + 50 - 49);
    assert.equal(c.discountedMs, 49);
    assert.equal(c.stalls, 1);
    c.release();
    wall += 100;
    assert.equal(c.nowMs(), 1655 - 49, 'released: time runs as the wall clock');
    c.stop();
  });

  it('never runs backwards and never faster than the wall clock', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ dt: fc.double({ min: 0, max: 100, noNaN: true }), hold: fc.integer({ min: -1, max: 1 }) }), { maxLength: 60 }), (steps) => {
        let wall = 0;
        const c = new RunClock(1, () => wall);
        let last = c.nowMs();
        for (const s of steps) {
          wall += s.dt;
          if (s.hold > 0) c.hold();
          if (s.hold < 0) c.release();
          const now = c.nowMs();
          assert.ok(now >= last - 1e-9 && now - last <= s.dt + 1e-9);
          last = now;
        }
        c.stop();
      }),
    );
  });
});

describe('InputDrain', () => {
  it('waits for a turn in which nothing arrived', async () => {
    let received = 0;
    let ranAt = -1;
    const d = new InputDrain(() => received, () => 0);
    d.whenDrained({ latestMs: 1e9, run: () => (ranAt = turn) });
    let turn = 0;
    for (; turn < 20; turn++) {
      received++; // a packet this turn
      await tick();
    }
    assert.equal(ranAt, -1, 'input kept arriving');
    for (let i = 0; i < 3; i++, turn++) await tick();
    assert.ok(ranAt >= 20, `ran at turn ${ranAt}, after the input stopped`);
    assert.ok(d.deferredTurns >= 19);
  });

  it('runs a waiter at its bound even while input keeps arriving, and drops everything on stop', async () => {
    let received = 0;
    let now = 0;
    const ran: string[] = [];
    const d = new InputDrain(() => received, () => now);
    d.whenDrained({ latestMs: 10, run: () => ran.push('early') });
    d.whenDrained({ latestMs: 1e9, run: () => ran.push('late') });
    for (let i = 0; i < 5; i++) {
      received++;
      await tick();
    }
    assert.deepEqual([...ran], []);
    now = 10;
    for (let i = 0; i < 5; i++) {
      received++;
      await tick();
    }
    assert.deepEqual([...ran], ['early']);
    d.stop();
    for (let i = 0; i < 3; i++) await tick();
    assert.deepEqual([...ran], ['early'], 'stopped: the other never runs');
    d.whenDrained({ latestMs: 0, run: () => ran.push('after stop') });
    await tick();
    await tick();
    assert.deepEqual([...ran], ['early']);
  });
});

describe('retransmission backoff', () => {
  it('doubles per timeout in a row up to the ceiling, never below the timeout', () => {
    const t = localAckTimeoutUs(10) as number;
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => retryIntervalUs(10, n, 128_000)), [t, 2 * t, 4 * t, 8 * t, 16 * t, 128_000, 128_000, 128_000]);
    assert.equal(retryIntervalUs(18, 5, 128_000), localAckTimeoutUs(18), 'a timeout above the ceiling keeps its value');
    assert.equal(retryIntervalUs(10, 5, 0), t, 'ceiling 0: no backoff');
    assert.equal(retryIntervalUs(0, 3, 128_000), null, 'timeout 0: no timer');
  });
});

describe('udpSocketDrops', () => {
  const table = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  409: 011A007F:12B7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 515341 2 000000004f16ba9f 17',
    '  409: 021A007F:12B7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 515342 2 000000005847a144 0',
  ].join('\n');

  it('reads the drops of the socket bound to ip:port, or null when none is', () => {
    assert.equal(udpSocketDrops('127.0.26.1', 4791, table), 17);
    assert.equal(udpSocketDrops('127.0.26.2', 4791, table), 0);
    assert.equal(udpSocketDrops('127.0.26.3', 4791, table), null);
    assert.equal(udpSocketDrops('127.0.26.1', 4792, table), null);
    assert.equal(udpSocketDrops('127.0.26.1', 4791, null), null);
  });
});
