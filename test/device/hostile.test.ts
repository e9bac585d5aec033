// Hostile control commands and WQEs: truncated at every length, split across descriptors in any
// way, random bytes, huge lengths. The device never throws, never needs reset for any of it, and a
// command that is not answered OK changes nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AccessFlag, Cmd, RdmaStatus } from '../../src/device/abi.js';
import { writeQpAttr } from '../../src/device/structs.js';
import { qpAttr } from '../../src/guest/rdma/device.js';
import { DATA_AREA, RC, basicQp, rig, snapshot, toRts, type Rig } from './harness.js';

function request(cmd: number, body: Uint8Array, len = body.length): Uint8Array {
  const out = new Uint8Array(8 + body.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, cmd, true);
  v.setUint32(4, len, true);
  out.set(body, 8);
  return out;
}

async function answer(r: Rig, pieces: Uint8Array[], writable: number[]): Promise<{ usedLen: number; status: number; len: number }> {
  const a = await r.guest.control.raw(pieces, writable);
  const v = new DataView(a.bytes.buffer);
  return { usedLen: a.usedLen, status: a.bytes.length > 0 ? v.getUint8(0) : -1, len: a.bytes.length >= 8 ? v.getUint32(4, true) : -1 };
}

/** Valid command bodies that would change state if executed. */
async function validCommands(r: Rig): Promise<{ cmd: Cmd; body: Uint8Array; resp: number }[]> {
  const pd = await r.guest.createPd();
  const { qp } = await basicQp(r);
  const createQp = new Uint8Array(56);
  const cv = new DataView(createQp.buffer);
  cv.setUint32(0, pd, true);
  cv.setUint8(4, RC);
  [4, 4, 1, 1, 0].forEach((x, i) => cv.setUint32(16 + 4 * i, x, true));
  const regPhys = new Uint8Array(56);
  const rv = new DataView(regPhys.buffer);
  rv.setUint32(0, pd, true);
  rv.setUint32(4, AccessFlag.LOCAL_WRITE, true);
  rv.setBigUint64(16, 4096n, true);
  rv.setUint32(24, 12, true);
  rv.setUint32(32, 1, true);
  rv.setBigUint64(48, BigInt(DATA_AREA), true);
  const modify = new Uint8Array(128);
  const mv = new DataView(modify.buffer);
  mv.setUint32(0, qp.qpn, true);
  mv.setUint32(4, 1 | 4, true);
  writeQpAttr(mv, 8, qpAttr({ qpState: 1, qpAccessFlags: 2 }));
  const cq = new Uint8Array(8);
  new DataView(cq.buffer).setUint32(0, 4, true);
  return [
    { cmd: Cmd.CreateQp, body: createQp, resp: 32 },
    { cmd: Cmd.RegPhysMr, body: regPhys, resp: 16 },
    { cmd: Cmd.ModifyQp, body: modify, resp: 0 },
    { cmd: Cmd.CreateCq, body: cq, resp: 16 },
  ];
}

describe('hostile control commands', () => {
  it('a command truncated at every length is refused and changes nothing; whole, it runs', async () => {
    const r = rig();
    for (const { cmd, body, resp } of await validCommands(r)) {
      const full = request(cmd, body);
      for (let cut = 0; cut < full.length; cut++) {
        const before = snapshot(r);
        const a = await answer(r, [full.subarray(0, cut)], [8 + resp]);
        if (cut < 8) assert.equal(a.usedLen, 0, 'no header: returned unanswered');
        else assert.equal(a.status, RdmaStatus.InvalidArg, `cut ${cut} of ${Cmd[cmd]}`);
        assert.equal(snapshot(r), before);
        // The same truncation, with len saying so (the command struct itself is short).
        if (cut >= 8 && cut < full.length) {
          const short = request(cmd, body.subarray(0, cut - 8));
          assert.equal((await answer(r, [short], [8 + resp])).status, RdmaStatus.InvalidArg);
          assert.equal(snapshot(r), before);
        }
      }
      // Response room short by one byte: nothing runs.
      const before = snapshot(r);
      if (resp > 0) assert.equal((await answer(r, [full], [8 + resp - 1])).status, RdmaStatus.InvalidArg);
      assert.equal(snapshot(r), before);
      const ok = await answer(r, [full], [8 + resp]);
      assert.equal(ok.status, RdmaStatus.Ok, `${Cmd[cmd]}: ${String(r.device.control.lastFailure)}`);
      assert.equal(ok.usedLen, 8 + resp);
      assert.equal(ok.len, resp);
    }
    assert.ok(!r.device.needsReset);
  });

  it('a command split across descriptors in any way reads the same', async () => {
    const r = rig();
    const cmds = await validCommands(r);
    const full = request(Cmd.CreateCq, cmds[3].body);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: full.length }), { maxLength: 5 }), fc.integer({ min: 0, max: 3 }), async (cuts, respSplit) => {
        const points = [...new Set([0, ...cuts, full.length])].sort((a, b) => a - b);
        const pieces = points.slice(1).map((end, i) => full.subarray(points[i], end));
        const writable = respSplit === 0 ? [24] : [respSplit, 24 - respSplit];
        const a = await r.guest.control.raw(pieces, writable);
        const v = new DataView(a.bytes.buffer);
        assert.equal(v.getUint8(0), RdmaStatus.Ok);
        assert.equal(a.usedLen, 24);
        assert.equal(v.getUint32(16, true), 4, 'the depth read back from the split request');
        const destroy = await r.guest.control.raw([request(Cmd.DestroyCq, a.bytes.slice(8, 12))], [8]);
        assert.equal(destroy.bytes[0], RdmaStatus.Ok);
      }),
      { numRuns: 40 },
    );
  });

  it('huge and overflowing lengths are refused before anything is read or allocated', async () => {
    const r = rig();
    await validCommands(r);
    const before = snapshot(r);
    for (const len of [0xffffffff, 0x80000000, 0x7ffffff8, 56 + 8 * 262145]) {
      for (const cmd of [Cmd.RegUserMr, Cmd.RegPhysMr, Cmd.AdviseMr, 200]) {
        assert.equal((await answer(r, [request(cmd, new Uint8Array(64), len)], [64])).status, RdmaStatus.InvalidArg);
      }
    }
    // Counts above the device limits with a matching len: refused by the count.
    const huge = new Uint8Array(32);
    new DataView(huge.buffer).setUint32(24, 0x20000000, true);
    assert.equal((await answer(r, [request(Cmd.RegUserMr, huge, 32 + 8 * 0x20000000)], [64])).status, RdmaStatus.InvalidArg);
    assert.equal(snapshot(r), before);
    assert.ok(!r.device.needsReset);
  });

  it('random bytes never throw out of the device; a refused command changes nothing', async () => {
    const r = rig();
    await validCommands(r);
    const cmdArb = fc.oneof(fc.constantFrom(...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 32, 33, 34, 35, 36, 37, 38]), fc.integer({ min: 0, max: 0xffff }));
    await fc.assert(
      fc.asyncProperty(cmdArb, fc.uint8Array({ maxLength: 200 }), fc.option(fc.nat(), { nil: undefined }), fc.array(fc.integer({ min: 0, max: 160 }), { minLength: 0, maxLength: 3 }), async (cmd, body, len, writable) => {
        const before = snapshot(r);
        const a = await answer(r, [request(cmd, body, len ?? body.length)], writable.length === 0 ? [0] : writable);
        if (a.usedLen === 0 || a.status !== RdmaStatus.Ok) assert.equal(snapshot(r), before);
        assert.ok(a.status <= RdmaStatus.DeviceError || a.usedLen === 0);
        assert.notEqual(a.status, RdmaStatus.DeviceError, String(r.device.control.lastFailure));
      }),
      { numRuns: 400 },
    );
    assert.ok(!r.device.needsReset);
  });
});

describe('hostile work requests', () => {
  it('random send and receive chains never throw, never break the device, and every chain comes back', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.uint8Array({ maxLength: 120 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 12 }), fc.boolean(), async (chains, recv) => {
        const r = rig();
        const { cq, qp } = await basicQp(r);
        await toRts(qp);
        const ring = recv ? qp.rq : qp.sq;
        let posted = 0;
        for (const pieces of chains) if (ring.postRaw(pieces, BigInt(posted++))) continue;
        // Complete whatever reached the provider, then flush the rest.
        while (r.verbs.qps.get(qp.qpn)?.sends.length) r.verbs.completeSend(qp.qpn);
        await qp.modify(1, { qpState: 6 });
        cq.poll();
        assert.equal(ring.takeReturned().length, posted);
        assert.ok(!r.device.needsReset);
      }),
      { numRuns: 60 },
    );
  });
});
