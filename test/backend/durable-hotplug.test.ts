// Hotplug (R2) on a durable VM: the driver's thread owns the memory map, the backend changes the
// shared region table between its passes and re-maps the all-memory MR, committed to the journal.
// A peer's RDMA WRITE through the all-memory MR's rkey lands in a plugged region, vanishes into
// the throw-away page once it is unplugged (a READ there gives zeros), and reaches the region
// again when it is plugged back — also after the backend's worker was terminated, the device
// restored from its journal on a new one. Over real UDP and real worker threads.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/backend-pool.js';
import { DurableVm } from '../../src/backend/durable-vm.js';
import { AccessFlag, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../../src/device/abi.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { connectRc } from '../../src/host/connect.js';
import { Vm } from '../../src/host/vm.js';
import { MemoryError, MemoryErrorCode } from '../../src/memory/errors.js';
import { pattern } from '../e2e/pattern.js';

const MiB = 1024 * 1024;
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const HOT = 64 * MiB; // above the 32 MiB plugged at the start, with a hole between
const [IP_A, IP_B] = ['127.0.35.80', '127.0.35.81'];

const pool = new BackendPool({ workers: 1 });
after(() => pool.close());

interface End {
  qp: GuestQp;
  cq: GuestCq;
  lkey: number;
  rkey: number;
}

async function end(vm: Vm | DurableVm): Promise<End> {
  const pd = await vm.guest.createPd();
  const cq = await vm.guest.createCq(64);
  const qp = await vm.guest.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
  const mr = await vm.guest.getDmaMr(pd, ALL);
  return { qp, cq, lkey: mr.lkey, rkey: mr.rkey };
}

describe('hotplug on a durable VM', () => {
  it('a plugged region is reachable through the all-memory MR, an unplugged one swallows writes, across a backend restart', async () => {
    const a = await Vm.open({ ip: IP_A });
    // A 64 MiB RAM window, 32 MiB of it plugged at GPA 0: room for more.
    // Its socket in its worker: the restart below binds the address again (terminated while no
    // traffic flows: see BackendPool's `socket` option).
    const b = await DurableVm.open(pool, { ip: IP_B, ramBytes: 64 * MiB, regionBytes: 32 * MiB, socket: 'worker' });
    try {
      const [ea, eb] = [await end(a), await end(b)];
      await connectRc(ea.qp, 100, { ip: IP_B, qpn: eb.qp.qpn, psn: 200 }, { access: ALL, timeout: 14 });
      await connectRc(eb.qp, 200, { ip: IP_A, qpn: ea.qp.qpn, psn: 100 }, { access: ALL, timeout: 14 });
      const src = a.allocBuffer(64 * 1024, 4096);
      const sink = a.allocBuffer(64 * 1024, 4096);
      let wrId = 0n;
      const write = async (seed: number): Promise<Uint8Array> => {
        const data = pattern(seed, 8192);
        a.writeBuffer(src, data);
        a.guest.qps.get(ea.qp.qpn)!.postSend([{ wrId: wrId++, opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, remoteAddr: HOT + 4096, rkey: eb.rkey, sgList: [{ addr: src, length: data.length, lkey: ea.lkey }] }]);
        const [c] = await waitForCompletions(ea.cq, 1);
        assert.equal(c.status, CqeStatus.Success);
        return data;
      };
      const landed = (data: Uint8Array) => assert.deepEqual(b.bytes(HOT + 4096, data.length), data, 'the WRITE is in the plugged region');

      const region = await b.plugRegion(HOT, 2 * MiB);
      assert.ok(region.hostOffset >= b.dm.layout.ramBase + 32 * MiB, 'backed from the free part of the window');
      // The device's dirty log covers the plugged region too: a migration would carry the write.
      b.dirtyLog.start();
      landed(await write(1));
      assert.ok(b.dirtyLog.harvest().includes((HOT + 4096) / 4096), "the WRITE's page is in the device's log");
      assert.equal(b.dirtyLog.overflowed, false);
      b.dirtyLog.stop();

      await assert.rejects(b.plugRegion(HOT + MiB, 2 * MiB), (err: unknown) => err instanceof MemoryError && err.code === MemoryErrorCode.RegionConflict);
      // The refused plug gave its backing back: the rest of the window still fits 30 MiB.
      const big = await b.plugRegion(128 * MiB, 30 * MiB);
      await b.unplugRegion(big.gpa);

      // The device keeps what it committed: a backend restored on a new worker reaches the region.
      await pool.terminateWorkerOf(b.durable);
      await b.durable.ready();
      assert.equal(b.durable.restarts, 1);
      landed(await write(2));

      await b.unplugRegion(HOT);
      await write(3);
      a.guest.qps.get(ea.qp.qpn)!.postSend([{ wrId: wrId++, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: HOT + 4096, rkey: eb.rkey, sgList: [{ addr: sink, length: 8192, lkey: ea.lkey }] }]);
      const [rd] = await waitForCompletions(ea.cq, 1);
      assert.equal(rd.status, CqeStatus.Success);
      assert.ok(a.bytes(sink, 8192).every((x) => x === 0), 'a READ of unplugged memory gives zeros');
      await assert.rejects(b.unplugRegion(HOT), (err: unknown) => err instanceof MemoryError && err.code === MemoryErrorCode.NoSuchRegion);

      await b.plugRegion(HOT, 2 * MiB);
      assert.ok(b.bytes(HOT + 4096, 8192).every((x) => x === 0), 'a region plugged again reads as zeros');
      landed(await write(4));
    } finally {
      await b.close();
      await a.close();
    }
  });
});
