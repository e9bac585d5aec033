// The RDMA WRITE loop the end-to-end benchmarks share: one RC QP per VM with a DMA MR over all of
// guest RAM and a data buffer, and a window of WRITEs kept in flight until a count completes.
import { AccessFlag, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../src/device/abi.js';
import type { GuestCq, GuestQp } from '../src/guest/rdma/objects.js';
import type { SendRequest } from '../src/guest/rdma/wqe.js';
import type { Vm } from '../src/host/vm.js';

export const WINDOW = 64;
export const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ;

export interface End {
  vm: Vm;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
  buf: number;
}

export async function end(vm: Vm, bufBytes: number): Promise<End> {
  const g = vm.guest;
  const pd = await g.createPd();
  const cq = await g.createCq(1024);
  const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 256, maxRecvWr: 256, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 64 } });
  const mr = await g.getDmaMr(pd, ALL);
  return { vm, cq, qp, lkey: mr.lkey, rkey: mr.rkey, buf: vm.allocBuffer(bufBytes, 4096) };
}

/** Keep WINDOW WRITEs of `size` in flight until `count` completed; returns seconds. */
export async function writes(a: End, b: End, size: number, count: number): Promise<number> {
  let posted = 0;
  let completed = 0;
  const wr = (i: number): SendRequest => ({
    wrId: BigInt(i), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, sgList: [{ addr: a.buf + (i % WINDOW) * size, length: size, lkey: a.lkey }],
    remoteAddr: b.buf + (i % WINDOW) * size, rkey: b.rkey,
  });
  const started = process.hrtime.bigint();
  const first: SendRequest[] = [];
  while (posted < Math.min(WINDOW, count)) first.push(wr(posted++));
  a.qp.postSend(first);
  while (completed < count) {
    const wcs = a.cq.poll();
    if (wcs.length === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    for (const wc of wcs) if (wc.status !== CqeStatus.Success) throw new Error(`WRITE failed: status ${wc.status}`);
    completed += wcs.length;
    const more: SendRequest[] = [];
    for (let i = 0; i < wcs.length && posted < count; i++) more.push(wr(posted++));
    if (more.length > 0) a.qp.postSend(more);
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

