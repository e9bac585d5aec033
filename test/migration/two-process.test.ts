// A VM moves between host processes mid-traffic, over real UDP and the coordinator's TCP stream:
// VM A (host A) and VM B (host B) run checked RC traffic both ways on 8 QPs (SEND/RECV, RDMA
// WRITE with immediate, RDMA READ, fetch-and-add); A migrates to host C. Afterwards every WR has
// completed exactly once and in order on both sides, every payload, READ, fetch-add result and
// WRITE target is as the peer made it, QPNs and keys are the same, no QP went to the error state
// — and the report says what it cost.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { MigrationReport } from '../../src/migration/index.js';
import { QpState } from '../../src/nic/qp-state.js';
import { HostPool, type Opened } from './host-process.js';
import { type TrafficConfig, type TrafficState, receivesOf } from './rc-traffic.js';

const pool = new HostPool();
after(() => pool.stopAll());

const config = (side: number): TrafficConfig => ({ side, messageBytes: 4096, window: 8, recvDepth: 16, slots: 8, ops: 600 });

describe('live migration between host processes', () => {
  it('moves a VM with RC traffic on 8 QPs: nothing lost, duplicated or corrupted; same QPNs and keys', async () => {
    const [a, b, c] = await Promise.all([pool.start('host A'), pool.start('host B'), pool.start('host C')]);
    const ipA = '127.0.24.11';
    const ipB = '127.0.24.12';
    const oa = await a.call<Opened>('open', { ip: ipA, qps: 8, config: config(0) });
    const ob = await b.call<Opened>('open', { ip: ipB, qps: 8, config: config(1) });
    // A local ACK timeout of 2^17 * 4.096 us (0.5 s): three host processes share two cores here.
    const attrs = { timeout: 17 };
    await a.call('connect', { own: oa, peer: { ip: ipB, ...ob }, config: config(0), attrs });
    await b.call('connect', { own: ob, peer: { ip: ipA, ...oa }, config: config(1), attrs });
    const before = await a.call<{ qpns: number[]; lkey: number }>('identity');
    await Promise.all([a.call('start'), b.call('start')]);
    await a.call('progress', { completed: 60 });
    const port = await c.call<number>('listen', { host: '127.0.24.13' });
    const report = await a.call<MigrationReport>('migrate', { host: '127.0.24.13', port });
    const moved = await c.call<{ qpns: number[]; resumed: number[] }>('accepted');
    assert.deepEqual(moved.qpns, before.qpns, 'the same QPs, by number');
    assert.deepEqual(moved.resumed, before.qpns, 'every QP was suspended and resumed');

    const [sc, sb] = await Promise.all([c.call<TrafficState>('finish'), b.call<TrafficState>('finish')]);
    assert.deepEqual(sc.violations, [], 'the migrated VM saw every completion once, in order, with the right bytes');
    assert.deepEqual(sb.violations, [], 'the peer saw every completion once, in order, with the right bytes');
    for (const s of [sc, sb]) assert.ok(s.qps.every((q) => q.completed === 600 && q.received === receivesOf(600)));
    assert.deepEqual(await c.call('verifyWrites', { peerSide: 1 }), []);
    assert.deepEqual(await b.call('verifyWrites', { peerSide: 0 }), []);
    const afterMove = await c.call<{ qpns: number[]; states: number[]; lkey: number }>('identity');
    assert.deepEqual(afterMove.qpns, before.qpns);
    assert.equal(afterMove.lkey, before.lkey);
    assert.ok(afterMove.states.every((s) => s === QpState.Rts), `QP states ${afterMove.states}`);
    const peer = await b.call<{ states: number[] }>('identity');
    assert.ok(peer.states.every((s) => s === QpState.Rts), 'no peer QP went to the error state');

    assert.ok(report.rounds.length >= 2 && report.rounds[0].round === 0 && report.rounds.at(-1)!.final);
    assert.equal(report.blackout.perQp.length, 8);
    assert.ok(report.blackout.perQp.every((q) => q.ms !== null), JSON.stringify(report.blackout));
    assert.ok(report.downtimeMs > 0 && report.totalMs > report.downtimeMs);
    assert.ok(report.deviceStateBytes > 0 && report.guestStateBytes > 0 && report.appStateBytes > 0);
  });
});
