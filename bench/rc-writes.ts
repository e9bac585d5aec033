// The RDMA WRITE loop the end-to-end benchmarks share: one RC QP per guest with a DMA MR over all
// of guest RAM and a data buffer, connected pairwise, and a window of WRITEs kept in flight until a
// count completes (the window loop is the WRITE stream's, src/host/write-stream.ts). A guest is a
// VM's (src/host/vm.ts) or one driving a durable backend (src/backend).
import { AccessFlag, QpTypeCode, SendFlag, SendOpcode } from '../src/device/abi.js';
import type { RdmaGuest } from '../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../src/guest/rdma/objects.js';
import type { SendRequest } from '../src/guest/rdma/wqe.js';
import { connectRc } from '../src/host/connect.js';
import type { Vm } from '../src/host/vm.js';
import { keepWritesInFlight } from '../src/host/write-stream.js';
import { PathMtu } from '../src/nic/types.js';

export const WINDOW = 64;
export const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ;

/** One side of a WRITE stream: the guest's address, CQ, QP, keys and data buffer (a GPA). */
export interface StreamEnd {
  ip: string;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
  buf: number;
}

export interface End extends StreamEnd {
  vm: Vm;
}

/** The objects a stream needs on `guest`, whose data buffer is at GPA `buf`. */
export async function streamEnd(guest: RdmaGuest, ip: string, buf: number): Promise<StreamEnd> {
  const pd = await guest.createPd();
  const cq = await guest.createCq(1024);
  const qp = await guest.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 256, maxRecvWr: 256, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 64 } });
  const mr = await guest.getDmaMr(pd, ALL);
  return { ip, cq, qp, lkey: mr.lkey, rkey: mr.rkey, buf };
}

export async function end(vm: Vm, bufBytes: number): Promise<End> {
  return { vm, ...(await streamEnd(vm.guest, vm.ip, vm.allocBuffer(bufBytes, 4096))) };
}

/** Connect the two ends' QPs to each other (4 KiB path MTU). */
export async function connectEnds(a: StreamEnd, b: StreamEnd): Promise<void> {
  const attrs = { pathMtu: PathMtu.Mtu4096, access: ALL };
  await connectRc(a.qp, 1, { ip: b.ip, qpn: b.qp.qpn, psn: 2 }, attrs);
  await connectRc(b.qp, 2, { ip: a.ip, qpn: a.qp.qpn, psn: 1 }, attrs);
}

/** Keep WINDOW WRITEs of `size` in flight until `count` completed; returns seconds. */
export async function writes(a: StreamEnd, b: StreamEnd, size: number, count: number): Promise<number> {
  const wr = (i: number): SendRequest => ({
    wrId: BigInt(i), opcode: SendOpcode.RdmaWrite, flags: SendFlag.SIGNALED, sgList: [{ addr: a.buf + (i % WINDOW) * size, length: size, lkey: a.lkey }],
    remoteAddr: b.buf + (i % WINDOW) * size, rkey: b.rkey,
  });
  const started = process.hrtime.bigint();
  await keepWritesInFlight(a.qp, a.cq, WINDOW, wr, (posted) => posted < count);
  return Number(process.hrtime.bigint() - started) / 1e9;
}
