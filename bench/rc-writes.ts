// The RDMA WRITE loop the end-to-end benchmarks share: one RC QP per VM with a DMA MR over all of
// guest RAM and a data buffer, and a window of WRITEs kept in flight until a count completes (the
// window loop is the WRITE stream's, src/host/write-stream.ts).
import { AccessFlag, QpTypeCode, SendFlag, SendOpcode } from '../src/device/abi.js';
import type { GuestCq, GuestQp } from '../src/guest/rdma/objects.js';
import type { SendRequest } from '../src/guest/rdma/wqe.js';
import type { Vm } from '../src/host/vm.js';
import { keepWritesInFlight } from '../src/host/write-stream.js';

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
  const wr = (i: number): SendRequest => ({
    wrId: BigInt(i), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, sgList: [{ addr: a.buf + (i % WINDOW) * size, length: size, lkey: a.lkey }],
    remoteAddr: b.buf + (i % WINDOW) * size, rkey: b.rkey,
  });
  const started = process.hrtime.bigint();
  await keepWritesInFlight(a.qp, a.cq, WINDOW, wr, (posted) => posted < count);
  return Number(process.hrtime.bigint() - started) / 1e9;
}
