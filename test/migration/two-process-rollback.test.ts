// A migration the destination cannot complete leaves the VM running on the source, unharmed: a
// corrupted, truncated or version-mismatched device state and a malformed guest state are each refused at the
// destination (its ABORT names the reason), the source takes its VM back (address, QPs, guest);
// a state preview that does not restore is refused before the guest ever stops
// and its traffic with the peer carries on; a later migration of the same VM then succeeds, and
// every WR completed once, with the right bytes, on both sides.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { QpState } from '../../src/nic/qp-state.js';
import { HostPool, type Opened } from './host-process.js';
import { type TrafficConfig, type TrafficState, receivesOf } from './rc-traffic.js';

const pool = new HostPool();
after(() => pool.stopAll());

const config = (side: number): TrafficConfig => ({ side, messageBytes: 2048, window: 8, recvDepth: 16, slots: 8, ops: 800 });

describe('a failed migration', () => {
  it('leaves the VM on the source, traffic intact; the next migration succeeds', async () => {
    const [a, b, c] = await Promise.all([pool.start('host A'), pool.start('host B'), pool.start('host C')]);
    const ipA = '127.0.24.31';
    const ipB = '127.0.24.32';
    const oa = await a.call<Opened>('open', { ip: ipA, qps: 4, config: config(0) });
    const ob = await b.call<Opened>('open', { ip: ipB, qps: 4, config: config(1) });
    const attrs = { timeout: 17 };
    await a.call('connect', { own: oa, peer: { ip: ipB, ...ob }, config: config(0), attrs });
    await b.call('connect', { own: ob, peer: { ip: ipA, ...oa }, config: config(1), attrs });
    await Promise.all([a.call('start'), b.call('start')]);
    let completed = 40;
    await a.call('progress', { completed });
    for (const [damage, why] of [['device-byte', /BAD_CHECKSUM/], ['device-truncate', /TRUNCATED|BAD_CHECKSUM/], ['device-version', /BAD_VERSION/], ['guest', /BAD_STATE/]] as const) {
      const port = await c.call<number>('listen', { host: '127.0.24.33', damage });
      await assert.rejects(a.call('migrate', { host: '127.0.24.33', port }), (e: Error) => /PEER_ABORT/.test(e.message) && why.test(e.message), damage);
      await assert.rejects(c.call('accepted'), /SWITCHOVER/);
      const id = await a.call<{ states: number[] }>('identity');
      assert.ok(id.states.every((s) => s === QpState.Rts), `${damage}: QP states ${id.states}`);
      completed += 60;
      await a.call('progress', { completed });
    }
    // A preview the destination cannot restore is refused during pre-copy: the guest never stops.
    const before = (await a.call<{ guestPauses: number }>('identity')).guestPauses;
    const refused = await c.call<number>('listen', { host: '127.0.24.33', damage: 'preview' });
    await assert.rejects(a.call('migrate', { host: '127.0.24.33', port: refused }), (e: Error) => /PEER_ABORT/.test(e.message) && /REFUSED/.test(e.message) && /BAD_CHECKSUM/.test(e.message));
    await assert.rejects(c.call('accepted'), /REFUSED/);
    assert.equal((await a.call<{ guestPauses: number }>('identity')).guestPauses, before);
    completed += 60;
    await a.call('progress', { completed });
    const port = await c.call<number>('listen', { host: '127.0.24.33' });
    await a.call('migrate', { host: '127.0.24.33', port });
    await c.call('accepted');
    const [sc, sb] = await Promise.all([c.call<TrafficState>('finish'), b.call<TrafficState>('finish')]);
    assert.deepEqual(sc.violations, []);
    assert.deepEqual(sb.violations, []);
    for (const s of [sc, sb]) assert.ok(s.qps.every((q) => q.completed === 800 && q.received === receivesOf(800)));
    assert.deepEqual(await c.call('verifyWrites', { peerSide: 1 }), []);
    assert.deepEqual(await b.call('verifyWrites', { peerSide: 0 }), []);
  });
});
