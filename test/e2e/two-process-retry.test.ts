// RNR and retry limits between two host processes over real UDP (R8's machinery): a receiver
// without a posted receive answers RNR NAK until one appears (rnr_retry 7 waits for ever, a
// finite count gives up), and a peer that vanishes exhausts retry_cnt.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import { Host, type Info } from './host-process.js';

async function pair(a: Host, b: Host, attrs: Record<string, number>): Promise<void> {
  await Promise.all([a.started, b.started]);
  [a.info, b.info] = await Promise.all([a.call<Info>('setup', { ip: a.ip }), b.call<Info>('setup', { ip: b.ip })]);
  await Promise.all([
    a.call('connect', { localPsn: 10, remote: { ip: b.ip, qpn: b.info.rcQpn, psn: 20 }, attrs }),
    b.call('connect', { localPsn: 20, remote: { ip: a.ip, qpn: a.info.rcQpn, psn: 10 }, attrs }),
  ]);
}

async function send(a: Host, wrId: bigint): Promise<void> {
  const src = await a.alloc(4096);
  await a.call('fill', { at: src, len: 4096, seed: 5 });
  await a.call('postSend', { qp: 'rc', wrs: [{ wrId, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [a.sge(src, 4096)] }] });
}

describe('RNR and retry limits across two processes', { timeout: 60_000 }, () => {
  describe('rnr_retry 7 waits until the receiver posts a receive', () => {
    const a = new Host('127.0.1.61');
    const b = new Host('127.0.1.62');
    // min_rnr_timer 1 asks the sender to wait 0.01 ms between tries (IBTA RNR timer table).
    before(() => pair(a, b, { rnrRetry: 7, minRnrTimer: 1 }));
    after(() => Promise.all([a.stop(), b.stop()]));

    it('completes once the receive arrives, after RNR NAKs', async () => {
      await send(a, 1n);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await a.call('poll'), [], 'nothing completes while the receiver has no receive posted');
      const dst = await b.alloc(4096);
      await b.call('postRecv', { qp: 'rc', wrs: [{ wrId: 2n, sgList: [b.sge(dst, 4096)] }] });
      const [sent, got] = await Promise.all([a.waitCq(1), b.waitCq(1)]);
      assert.deepEqual([sent[0].wrId, sent[0].status], [1n, CqeStatus.Success]);
      assert.deepEqual([got[0].wrId, got[0].status, got[0].byteLen], [2n, CqeStatus.Success, 4096]);
      assert.equal(await b.call('verify', { at: dst, len: 4096, seed: 5 }), -1);
    });
  });

  describe('a finite rnr_retry gives up', () => {
    const a = new Host('127.0.1.63');
    const b = new Host('127.0.1.64');
    before(() => pair(a, b, { rnrRetry: 2, minRnrTimer: 1 }));
    after(() => Promise.all([a.stop(), b.stop()]));

    it('completes with RNR_RETRY_EXC_ERR', async () => {
      await send(a, 3n);
      const [c] = await a.waitCq(1);
      assert.deepEqual([c.wrId, c.status], [3n, CqeStatus.RnrRetryExcErr]);
    });
  });

  describe('a peer that disappears', () => {
    const a = new Host('127.0.1.65');
    const b = new Host('127.0.1.66');
    // Local ACK timeout 4.096 us * 2^10 = 4 ms, two retries.
    before(() => pair(a, b, { timeout: 10, retryCnt: 2 }));
    after(() => a.stop());

    it('exhausts retry_cnt: RETRY_EXC_ERR, then the rest flush', async () => {
      await b.stop();
      await send(a, 4n);
      await send(a, 5n);
      const cqes = await a.waitCq(2);
      assert.deepEqual(cqes.map((c) => [c.wrId, c.status]), [[4n, CqeStatus.RetryExcErr], [5n, CqeStatus.WrFlushErr]]);
    });
  });
});
