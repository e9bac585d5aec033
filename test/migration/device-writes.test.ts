// Byte-exact check of the device's dirty logging (R4): every byte the device changes in guest RAM
// while it processes (control responses, CQEs, event records, used ring entries and indices,
// notification suppression words) lies in a range it marked in the device memory's log during
// that same call. The device runs inline, so between entering and leaving process() only the
// device writes guest RAM; the check compares RAM before and after each call. Split and packed
// rings, with and without VIRTIO_F_EVENT_IDX.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventType, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { WriteLog } from '../../src/memory/write-log.js';
import { VIRTIO_F_EVENT_IDX } from '../../src/virtio/queue.js';
import { DATA_AREA, RC, rig, toRts } from '../device/harness.js';

class RecordingLog implements WriteLog {
  readonly enabled = true;
  ranges: [number, number][] = [];
  mark(gpa: number, lenBytes: number): void {
    this.ranges.push([gpa, lenBytes]);
  }
}

/** Bytes of [0, limit) that differ between two snapshots. */
function changedBytes(before: Uint8Array, after: Uint8Array): number[] {
  const out: number[] = [];
  for (let at = 0; at < before.length; at += 4096) {
    const a = before.subarray(at, at + 4096);
    const b = after.subarray(at, at + 4096);
    if (Buffer.compare(a, b) === 0) continue;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push(at + i);
  }
  return out;
}

async function scenario(packed: boolean, eventIdx: boolean) {
  const features = eventIdx ? undefined : ~(1n << BigInt(VIRTIO_F_EVENT_IDX)) & (2n ** 64n - 1n);
  const r = rig({ open: { packed, features } });
  const log = new RecordingLog();
  r.dm.dirtyLog = log;
  const ram = r.dm.guest.slice(0 as never, DATA_AREA);
  let calls = 0;
  let changed = 0;
  const process = r.device.process.bind(r.device);
  r.device.process = () => {
    const before = ram.slice();
    log.ranges = [];
    const more = process();
    for (const byte of changedBytes(before, ram)) {
      assert.ok(log.ranges.some(([g, n]) => byte >= g && byte < g + n), `byte 0x${byte.toString(16)} written by the device without a mark`);
      changed++;
    }
    calls++;
    return more;
  };
  const pd = await r.guest.createPd();
  const cq = await r.guest.createCq(2, { buffers: 1 });
  const qp = await r.guest.createQp({ pd, type: RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
  await toRts(qp);
  const send = (n: number, from: number) => qp.postSend(Array.from({ length: n }, (_, i) => ({ wrId: BigInt(from + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED })));
  // CQEs written and polled, their buffers reposted.
  send(2, 1);
  r.verbs.completeSend(qp.qpn);
  assert.equal(cq.poll().length, 1);
  r.verbs.completeSend(qp.qpn);
  assert.equal(cq.poll().length, 1);
  // Overrun: CQ_ERR and QP_FATAL events, flushed chains returned on the used ring.
  send(4, 10);
  for (let i = 0; i < 4; i++) r.verbs.completeSend(qp.qpn);
  assert.deepEqual(r.guest.pollEvents(), [{ type: EventType.CqErr, handle: cq.cqn }, { type: EventType.QpFatal, handle: qp.qpn }]);
  assert.ok(qp.sq.takeReturned().length >= 4);
  await qp.query();
  assert.ok(calls > 10 && changed > 50, `the check ran (${calls} calls, ${changed} bytes)`);
}

describe('the device marks every byte it writes into guest RAM', () => {
  for (const packed of [false, true]) {
    for (const eventIdx of [true, false]) {
      it(`${packed ? 'packed' : 'split'} rings, ${eventIdx ? 'with' : 'without'} EVENT_IDX: control responses, CQEs, events, used rings`, async () => {
        await scenario(packed, eventIdx);
      });
    }
  }
});
