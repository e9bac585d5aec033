// No loss, no retries: 8 RC QPs with 8 mixed work requests outstanding per QP and direction
// (WRITE with immediate, SEND, READ, fetch-add) must run without a single local ACK timeout,
// duplicate request or duplicate response, even when the event loop is blocked for several
// ACK timeouts at a time while requests and responses wait to be processed — as a loaded host
// deschedules the process or a collector pauses it. Both guests live in this process, on the
// loopback hub and on real UDP sockets (127.0.26.x), so a blocked loop holds up both ends: what
// is late is the device, not the network, and the timer must not count it (src/nic/soft/run-clock.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UdpLink } from '../../../src/net/udp-link.js';
import { PathMtu } from '../../../src/nic/types.js';
import { type Guest, closeAll, guestOn, pair } from './fixtures.js';
import { blockEventLoop, runMixedTraffic } from './mixed-traffic.js';

const QPS = 8;
const WINDOW = 8;
const OPS = 400;
/** 4.096 us * 2^12 = 16.8 ms: short enough that a blocked loop outlasts it several times over. */
const TIMEOUT = 12;
const TIMEOUT_MS = (4.096 * 2 ** TIMEOUT) / 1000;

/** Block the loop for three ACK timeouts each time another tenth of the work has completed. */
function stalls(total: number): { between: (completed: number) => void; count: () => number } {
  let next = total / 10;
  let n = 0;
  return {
    between: (completed) => {
      if (completed < next) return;
      next += total / 10;
      n++;
      blockEventLoop(3 * TIMEOUT_MS);
    },
    count: () => n,
  };
}

function assertNoRetries(g: Guest): void {
  const events = Object.fromEntries(g.dev.counters.events);
  const dropped = Object.fromEntries(g.dev.counters.dropped);
  for (const e of ['local ACK timeout', 'go-back-N', 'duplicate request', 'sequence NAK sent', 'RNR NAK received']) {
    assert.equal(events[e] ?? 0, 0, `${g.ip}: ${e} without loss (events ${JSON.stringify(events)}, dropped ${JSON.stringify(dropped)})`);
  }
  assert.deepEqual(dropped, {}, `${g.ip}: packets dropped without loss`);
}

async function run(a: Guest, b: Guest): Promise<void> {
  // Sends and receives both ways: WRITE-with-immediates and SENDs each take one receive.
  const total = 2 * QPS * OPS * 1.5;
  const s = stalls(total);
  const { sends, recvs } = await runMixedTraffic(a, b, { qps: QPS, window: WINDOW, ops: OPS, messageBytes: 4096, mtu: PathMtu.Mtu1024, timeout: TIMEOUT, retryCnt: 7, between: s.between });
  assert.equal(sends, 2 * QPS * OPS);
  assert.equal(recvs, 2 * QPS * (OPS / 2));
  assert.ok(s.count() >= 5, `the loop was blocked ${s.count()} times`);
  assertNoRetries(a);
  assertNoRetries(b);
}

describe('many outstanding requests, no loss', { timeout: 60_000 }, () => {
  it('8 QPs x 8 mixed requests on the loopback hub: no timeout, no duplicate, through blocked loops', async () => {
    const { hub, a, b } = pair();
    try {
      await run(a, b);
      assert.equal(hub.counters.lost, 0);
    } finally {
      await closeAll(a, b);
    }
  });

  it('8 QPs x 8 mixed requests over UDP sockets: no timeout, no duplicate, no kernel drop, through blocked loops', async () => {
    const la = await UdpLink.open({ ip: '127.0.26.1' });
    const lb = await UdpLink.open({ ip: '127.0.26.2' });
    const a = guestOn(la);
    const b = guestOn(lb);
    try {
      await run(a, b);
      for (const l of [la, lb]) {
        const c = l.counters();
        assert.equal(c.sendDropped + c.sendErrors, 0, `${l.localIp}: sends refused`);
        const drops = l.kernelDrops();
        if (drops !== null) assert.equal(drops, 0, `${l.localIp}: datagrams the kernel dropped (receive buffer full)`);
      }
    } finally {
      await closeAll(a, b);
    }
  });
});
