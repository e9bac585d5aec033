// SoftRoce end to end over the in-process loopback hub: two devices (two guest memories), one
// RC connection, RDMA WRITE and SEND/RECV throughput with the Wasm kernels (MR translation,
// ICRC) against their TypeScript twins, in one process. The event loop carries every packet, so
// this measures the whole engine, not one kernel.
import { setImmediate as tick } from 'node:timers/promises';
import { DeviceMemory, type Gpa, gpa } from '../src/memory/index.js';
import { LoopbackHub } from '../src/net/loopback.js';
import { QpAttr, QpState, QpType } from '../src/nic/qp-state.js';
import { SoftRoce } from '../src/nic/soft/index.js';
import { Access, PathMtu, WrOpcode } from '../src/nic/types.js';
import type { KernelEngine } from '../src/virtio/queue.js';
import { type BenchRow, type BenchTask, runTasks, withRatios } from './harness.js';

const SUITE = 'soft-roce';
const MiB = 1024 * 1024;
const IOVA = 0x10000000;

interface End {
  dev: SoftRoce;
  cq: number;
  qp: number;
  lkey: number;
}

function device(hub: LoopbackHub, ip: string, engine: KernelEngine): { dev: SoftRoce; pd: number; cq: number; lkey: number } {
  const dm = DeviceMemory.create({ ramBytes: 8 * MiB, arenaBytes: 8 * MiB });
  dm.addRegion(0, 4 * MiB);
  const dev = new SoftRoce(dm, hub.attach(ip), { engine });
  const pd = dev.allocPd();
  const cq = dev.createCq(8192);
  const pages: Gpa[] = [];
  for (let o = 0; o < 4 * MiB; o += 4096) pages.push(gpa(o));
  const { lkey } = dev.registerPhysical(pd, { iova: IOVA, length: 4 * MiB, access: Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ, pageShift: 12, pages });
  return { dev, pd, cq, lkey };
}

function connect(engine: KernelEngine, n: number): [End, End] {
  const hub = new LoopbackHub();
  const a = device(hub, `127.0.2.${n}`, engine);
  const b = device(hub, `127.0.3.${n}`, engine);
  const cap = { maxSendWr: 4096, maxRecvWr: 4096, maxSendSge: 1, maxRecvSge: 1, maxInlineBytes: 0 };
  const qa = a.dev.createQp({ type: QpType.Rc, pd: a.pd, sendCq: a.cq, recvCq: a.cq, cap, sigAll: true });
  const qb = b.dev.createQp({ type: QpType.Rc, pd: b.pd, sendCq: b.cq, recvCq: b.cq, cap, sigAll: true });
  const A = QpAttr;
  for (const [d, qp, peerIp, peer] of [[a, qa, `127.0.3.${n}`, qb], [b, qb, `127.0.2.${n}`, qa]] as const) {
    d.dev.modifyQp(qp, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_WRITE | Access.REMOTE_READ }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
    d.dev.modifyQp(qp, { qpState: QpState.Rtr, pathMtu: PathMtu.Mtu4096, destQpNum: peer, rqPsn: 0, maxDestRdAtomic: 16, minRnrTimer: 1, ahAttr: { dgid: peerIp, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 } }, A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER);
    d.dev.modifyQp(qp, { qpState: QpState.Rts, sqPsn: 0, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
  }
  return [{ dev: a.dev, cq: a.cq, qp: qa, lkey: a.lkey }, { dev: b.dev, cq: b.cq, qp: qb, lkey: b.lkey }];
}

async function wait(e: End, count: number): Promise<void> {
  let got = 0;
  while (got < count) {
    const wcs = e.dev.pollCq(e.cq, count - got);
    for (const wc of wcs) if (wc.status !== 0) throw new Error(`work request failed with status ${wc.status}`);
    got += wcs.length;
    if (got < count) await tick();
  }
}

export default async function (): Promise<BenchRow[]> {
  const tasks: BenchTask[] = [];
  let n = 1;
  for (const engine of ['wasm', 'ts'] as const) {
    const [a, b] = connect(engine, n++);
    const write = async (): Promise<void> => {
      a.dev.postSend(a.qp, [{ wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: IOVA, length: MiB, lkey: a.lkey }], remoteAddr: IOVA + MiB, rkey: b.lkey }]);
      await wait(a, 1);
    };
    tasks.push({ name: 'RDMA WRITE 1 MiB, MTU 4096', engine, unit: 'byte', opsPerCall: MiB, fn: write as unknown as () => void });
    const [c, d] = connect(engine, n++);
    const sends = async (): Promise<void> => {
      d.dev.postRecv(d.qp, Array.from({ length: 64 }, () => ({ wrId: 2n, sgList: [{ addr: IOVA, length: 4096, lkey: d.lkey }] })));
      c.dev.postSend(c.qp, Array.from({ length: 64 }, () => ({ wrId: 3n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: IOVA, length: 4096, lkey: c.lkey }] })));
      await wait(c, 64);
      await wait(d, 64);
    };
    tasks.push({ name: 'SEND 4 KiB x 64', engine, unit: 'byte', opsPerCall: 64 * 4096, fn: sends as unknown as () => void });
  }
  return withRatios(await runTasks(SUITE, tasks, 1000));
}
