// A host process with one VM on a real UDP socket (src/host/vm.ts), driven by the test over the
// fork IPC channel (src/host/ipc.ts: advanced serialization, so bigints and byte arrays cross as
// they are). Everything the VM does goes
// through the guest library: the test only asks for verbs calls and checks of guest memory.
// argv: ip. Does nothing when imported.
import { pathToFileURL } from 'node:url';
import { AccessFlag, QpTypeCode } from '../../src/device/abi.js';
import { ahAttr } from '../../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import type { RecvRequest, SendRequest } from '../../src/guest/rdma/wqe.js';
import { waitForCompletions } from '../../src/host/completions.js';
import { type QpEndpoint, type RcAttributes, connectRc, udToRts } from '../../src/host/connect.js';
import { serveIpc } from '../../src/host/ipc.js';
import { Vm } from '../../src/host/vm.js';
import type { LossyOptions } from '../../src/net/lossy.js';
import type { SoftRoceOptions } from '../../src/nic/soft/options.js';
import { pattern } from './pattern.js';

export const UD_QKEY = 0x1234567;
const ALL_ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;

interface Objects {
  vm: Vm;
  pd: number;
  cq: GuestCq;
  rc: GuestQp;
  ud: GuestQp;
  lkey: number;
  rkey: number;
}

let objs: Objects | null = null;

function ready(): Objects {
  if (objs === null) throw new Error('setup first');
  return objs;
}

type Args = Record<string, unknown>;

const ops: Record<string, (a: Args) => unknown> = {
  async setup(a) {
    const vm = await Vm.open({ ip: a.ip as string, ramBytes: (a.ramBytes as number | undefined) ?? 16 * 1024 * 1024, lossy: a.lossy as LossyOptions | undefined, provider: a.provider as SoftRoceOptions | undefined });
    const g = vm.guest;
    const pd = await g.createPd();
    const cq = await g.createCq(512);
    const cap = { maxSendWr: 256, maxRecvWr: 256, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 };
    const rc = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap });
    const ud = await g.createQp({ pd, type: QpTypeCode.UD, sendCq: cq.cqn, recvCq: cq.cqn, cap });
    const mr = await g.getDmaMr(pd, ALL_ACCESS);
    objs = { vm, pd, cq, rc, ud, lkey: mr.lkey, rkey: mr.rkey };
    return { rcQpn: rc.qpn, udQpn: ud.qpn, lkey: mr.lkey, rkey: mr.rkey };
  },
  async connect(a) {
    const o = ready();
    await connectRc(o.rc, a.localPsn as number, a.remote as QpEndpoint, { maxRdAtomic: 16, maxDestRdAtomic: 16, ...(a.attrs as Partial<RcAttributes> | undefined) });
    await udToRts(o.ud, UD_QKEY);
  },
  alloc(a) {
    return ready().vm.allocBuffer(a.bytes as number);
  },
  fill(a) {
    ready().vm.writeBuffer(a.at as number, pattern(a.seed as number, a.len as number));
  },
  /** The first offset where guest memory differs from the pattern (or from `expect`), or -1. */
  verify(a) {
    const have = ready().vm.bytes(a.at as number, a.len as number);
    const want = (a.expect as Uint8Array | undefined) ?? pattern(a.seed as number, a.len as number);
    for (let i = 0; i < want.length; i++) if (have[i] !== want[i]) return i;
    return -1;
  },
  read(a) {
    return ready().vm.bytes(a.at as number, a.len as number).slice();
  },
  async createAh(a) {
    const o = ready();
    return o.vm.guest.createAh(o.pd, ahAttr(a.ip as string, 0, { hopLimit: 1 }));
  },
  postRecv(a) {
    const o = ready();
    (a.qp === 'ud' ? o.ud : o.rc).postRecv(a.wrs as RecvRequest[]);
  },
  postSend(a) {
    const o = ready();
    (a.qp === 'ud' ? o.ud : o.rc).postSend(a.wrs as SendRequest[]);
  },
  async waitCq(a) {
    return waitForCompletions(ready().cq, a.count as number, (a.timeoutMs as number | undefined) ?? 15_000);
  },
  poll() {
    return ready().cq.poll();
  },
  /** The provider's transport event and drop counters, for the test's diagnostics. */
  counters() {
    const c = ready().vm.verbs.counters;
    return { events: Object.fromEntries(c.events), dropped: Object.fromEntries(c.dropped), internalErrors: c.internalErrors };
  },
  async close() {
    await objs?.vm.close();
    objs = null;
  },
};

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  serveIpc(ops, () => {
    void Promise.resolve(ops.close({})).then(() => process.exit(0));
  });
}
