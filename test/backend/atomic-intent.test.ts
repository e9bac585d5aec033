// Settling an atomic a durable backend died around (src/backend/atomic-intent.ts): the target
// word tells whether it ran, and a state brought forward past a run atomic holds its saved result
// and the next PSN; a state that does not show the responder waiting for it is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settleIntent, stateWithAtomicDone } from '../../src/backend/atomic-intent.js';
import { AccessFlag, QpTypeCode } from '../../src/device/abi.js';
import { decodeDeviceState } from '../../src/device/state/codec.js';
import { connectRc } from '../../src/host/connect.js';
import { Vm } from '../../src/host/vm.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import type { AtomicIntent } from '../../src/nic/soft/options.js';
import { decodeSoftRoceState } from '../../src/nic/soft/state/codec.js';

const intent = (over: Partial<AtomicIntent> = {}): AtomicIntent => ({ qpn: 17, psn: 0x100, opcode: 0x14, rkey: 0x1234, va: 0x1000n, offset: 4096, before: 7n, after: 12n, ...over });

describe('settling an atomic intent', () => {
  it('reads the outcome from the target word', () => {
    assert.equal(settleIntent(7n, intent()), 'not-run');
    assert.equal(settleIntent(12n, intent()), 'ran');
    assert.equal(settleIntent(99n, intent()), 'in-doubt');
    // An operation that changes nothing (a compare that fails) did not matter either way.
    assert.equal(settleIntent(99n, intent({ after: 7n })), 'not-run');
  });

  it('brings a saved device forward past the atomic, or refuses a state not waiting for it', async () => {
    const hub = new LoopbackHub();
    const vm = await Vm.open({ ip: '10.9.0.1', link: hub.attach('10.9.0.1') });
    try {
      const g = vm.guest;
      const pd = await g.createPd();
      const cq = await g.createCq(16);
      const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
      await connectRc(qp, 1, { ip: '10.9.0.2', qpn: 99, psn: 0xfffffe }, { access: AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_ATOMIC, maxDestRdAtomic: 2 });
      const state = vm.device.saveState();
      const forward = stateWithAtomicDone(state, intent({ qpn: qp.qpn, psn: 0xfffffe }));
      assert.ok(forward !== null);
      const resp = (s: Uint8Array) => decodeSoftRoceState(decodeDeviceState(s).provider).qps.find((q) => q.qpn === qp.qpn)!.resp;
      const was = resp(state);
      const now = resp(forward);
      assert.equal(was.psn, 0xfffffe);
      assert.equal(now.psn, 0xffffff);
      assert.equal(now.msn, (was.msn + 1) & 0xffffff);
      assert.equal(now.lastOpcode, 0x14);
      assert.deepEqual(now.resources.at(-1), { atomic: true, psn: 0xfffffe, psnCount: 1, rkey: 0x1234, va: 0x1000n, lenBytes: 8, orig: 7n });
      // Twice more: the oldest result goes once max_dest_rd_atomic (2) are kept.
      const third = stateWithAtomicDone(stateWithAtomicDone(forward, intent({ qpn: qp.qpn, psn: 0xffffff, before: 12n }))!, intent({ qpn: qp.qpn, psn: 0, before: 17n }))!;
      assert.deepEqual(resp(third).resources.map((r) => [r.psn, r.orig]), [[0xffffff, 12n], [0, 17n]]);
      assert.equal(resp(third).psn, 1, 'the PSN wraps');
      assert.equal(stateWithAtomicDone(state, intent({ qpn: qp.qpn, psn: 5 })), null, 'the responder waits for another PSN');
      assert.equal(stateWithAtomicDone(state, intent({ qpn: qp.qpn + 1, psn: 0xfffffe })), null, 'no such QP');
    } finally {
      await vm.close();
    }
  });
});
