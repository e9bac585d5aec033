// Go-back-N under a bad network (R8), end to end: two host processes over real UDP sockets,
// each link dropping, duplicating, reordering and delaying the given fraction of what it sends.
// At each rate 256 MiB move by RDMA WRITE with immediate; every byte is checked in the receiving
// guest and every work request completes exactly once, successfully, in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CqeOpcode, CqeStatus, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { RecvRequest, SendRequest } from '../../src/guest/rdma/wqe.js';
import { Host, type Info } from './host-process.js';

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.VRDMA_LOSSY_MIB ?? 256) * MiB;
const ROUND = 8 * MiB;
const MESSAGE = MiB;
const RATES = [0.01, 0.05, 0.1];

for (const [n, rate] of RATES.entries()) {
  describe(`${rate * 100}% loss, duplication, reordering and delay over UDP`, { timeout: 240_000 }, () => {
    const a = new Host(`127.0.1.${41 + 2 * n}`);
    const b = new Host(`127.0.1.${42 + 2 * n}`);
    const seed = 7919 * (n + 1);
    const lossy = { drop: rate, duplicate: rate, reorder: rate, delay: rate, maxDelayMs: 2 };
    // What a deployment on a lossy path would choose: 4 KiB MTU (fewer packets to lose), a
    // window that covers loopback's bandwidth-delay product without making each go-back-N
    // resend much, and a local ACK timeout of 4.096 us * 2^10 = 4 ms instead of 67 ms. (At 1 ms,
    // seven timeouts in a row while a busy peer works through a backlog of resends are possible
    // on two cores, and end in RETRY_EXC_ERR.)
    const provider = { windowPsns: 32 };
    const attrs = { pathMtu: 5, timeout: 10 };

    before(async () => {
      await Promise.all([a.started, b.started]);
      const ramBytes = 24 * MiB;
      [a.info, b.info] = await Promise.all([
        a.call<Info>('setup', { ip: a.ip, ramBytes, lossy: { ...lossy, seed }, provider }),
        b.call<Info>('setup', { ip: b.ip, ramBytes, lossy: { ...lossy, seed: seed + 1 }, provider }),
      ]);
      await Promise.all([
        a.call('connect', { localPsn: 0xfff000, remote: { ip: b.ip, qpn: b.info.rcQpn, psn: 77 }, attrs }),
        b.call('connect', { localPsn: 77, remote: { ip: a.ip, qpn: a.info.rcQpn, psn: 0xfff000 }, attrs }),
      ]);
    });

    after(async () => {
      await Promise.all([a.stop(), b.stop()]);
    });

    it(`moves ${TOTAL / MiB} MiB with every byte checked and one completion per request`, async (t) => {
      const src = await a.alloc(ROUND);
      const dst = await b.alloc(ROUND);
      let wrId = 1n;
      for (let round = 0; round < TOTAL / ROUND; round++) {
        const dataSeed = seed + round;
        await a.call('fill', { at: src, len: ROUND, seed: dataSeed });
        const count = ROUND / MESSAGE;
        const recvs: RecvRequest[] = Array.from({ length: count }, (_, i) => ({ wrId: BigInt(round * 1000 + i), sgList: [] }));
        await b.call('postRecv', { qp: 'rc', wrs: recvs });
        const writes: SendRequest[] = Array.from({ length: count }, (_, i) => ({
          wrId: wrId++, opcode: SendOpcode.RdmaWriteWithImm, flags: SendFlag.SIGNALED, imm: round * 1000 + i,
          remoteAddr: dst + i * MESSAGE, rkey: b.info.rkey, sgList: [a.sge(src + i * MESSAGE, MESSAGE)],
        }));
        await a.call('postSend', { qp: 'rc', wrs: writes });
        const [sent, landed] = await Promise.all([a.waitCq(count, 60_000), b.waitCq(count, 60_000)]).catch(async (e) => {
          t.diagnostic(`failed: sender ${JSON.stringify(await a.call('counters'))} ${JSON.stringify(await a.call('poll'))}`);
          t.diagnostic(`failed: receiver ${JSON.stringify(await b.call('counters'))}`);
          throw e;
        });
        assert.deepEqual(sent.map((c) => [c.wrId, c.status]), writes.map((w) => [w.wrId, CqeStatus.Success]), `round ${round}: sender completions`);
        assert.deepEqual(landed.map((c) => [c.wrId, c.status, c.opcode, c.immData, c.byteLen]),
          recvs.map((r, i) => [r.wrId, CqeStatus.Success, CqeOpcode.RecvRdmaWithImm, round * 1000 + i, MESSAGE]), `round ${round}: receiver completions`);
        assert.equal(await b.call('verify', { at: dst, len: ROUND, seed: dataSeed }), -1, `round ${round}: data`);
      }
      t.diagnostic(`sender ${JSON.stringify(await a.call('counters'))}`);
      t.diagnostic(`receiver ${JSON.stringify(await b.call('counters'))}`);
      // Nothing left over or duplicated after the last round.
      assert.deepEqual(await a.call('poll'), []);
      assert.deepEqual(await b.call('poll'), []);
    });
  });
}
