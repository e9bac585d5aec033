// A host process for the two-process migration tests: one VM on real UDP (src/host/vm.ts) with N
// RC QPs running checked traffic (rc-traffic.ts), driven over the fork IPC channel like
// test/e2e/vm-child.ts: {id, op, args} in, {id, result} or {id, error} out. It can send its VM
// away (migrateOut) or take one in (listenForMigration) and carry on its traffic there.
// Does nothing when imported.
import { pathToFileURL } from 'node:url';
import { AccessFlag, QpTypeCode } from '../../src/device/abi.js';
import { connectRc } from '../../src/host/connect.js';
import { serveIpc } from '../../src/host/ipc.js';
import { Vm } from '../../src/host/vm.js';
import { type IncomingMigration, type MigrationListener, listenForMigration, migrateOut } from '../../src/migration/index.js';
import type { SoftRoceOptions } from '../../src/nic/soft/options.js';
import { STATE_MAJOR, stateChecksum } from '../../src/state/header.js';
import { type QpLayout, RcTraffic, type TrafficConfig, type TrafficState, expectedCounter, expectedWrites, writeAreaBytes } from './rc-traffic.js';

const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;

let vm: Vm | null = null;
let traffic: RcTraffic | null = null;
/** How often a migration stopped this host's guest (a vetted refusal must not). */
let guestPauses = 0;
let listener: MigrationListener<Vm> | null = null;
let lkey = 0;
let rkey = 0;
let provider: SoftRoceOptions | undefined;

function need<T>(x: T | null, what: string): T {
  if (x === null) throw new Error(`no ${what} here`);
  return x;
}

function trafficOn(v: Vm, state: TrafficState): RcTraffic {
  return new RcTraffic(v.guest, (at, bytes) => v.writeBuffer(at, bytes), (at, len) => v.bytes(at, len).slice(), state);
}

type Args = Record<string, unknown>;

const ops: Record<string, (a: Args) => unknown> = {
  async open(a) {
    const config = a.config as TrafficConfig;
    provider = a.provider as SoftRoceOptions | undefined;
    const v = await Vm.open({ ip: a.ip as string, ramBytes: (a.ramBytes as number | undefined) ?? 32 << 20, provider });
    vm = v;
    const g = v.guest;
    const pd = await g.createPd();
    const n = a.qps as number;
    const cq = await g.createCq(n * (config.window + config.recvDepth) + 16);
    const mr = await g.getDmaMr(pd, ALL);
    lkey = mr.lkey;
    rkey = mr.rkey;
    const layouts: Omit<QpLayout, 'peerWriteArea' | 'peerRkey'>[] = [];
    for (let i = 0; i < n; i++) {
      const cap = { maxSendWr: config.window, maxRecvWr: config.recvDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
      const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap });
      layouts.push({
        qpn: qp.qpn,
        sendBase: v.allocBuffer(config.window * config.messageBytes),
        recvBase: v.allocBuffer(config.recvDepth * config.messageBytes),
        writeArea: v.allocBuffer(writeAreaBytes(config)),
      });
    }
    traffic = null;
    return { cqn: cq.cqn, lkey, rkey, layouts };
  },
  /** Connect QP i to the peer's QP i and get the traffic ready (not started). */
  async connect(a) {
    const v = need(vm, 'VM');
    const own = a.own as { cqn: number; layouts: Omit<QpLayout, 'peerWriteArea' | 'peerRkey'>[] };
    const peer = a.peer as { ip: string; rkey: number; layouts: { qpn: number; writeArea: number }[] };
    for (const [i, l] of own.layouts.entries()) {
      await connectRc(need(v.guest.qps.get(l.qpn) ?? null, `QP ${l.qpn}`), 1000 + i, { qpn: peer.layouts[i].qpn, ip: peer.ip, psn: 1000 + i }, a.attrs as object | undefined);
    }
    const state: TrafficState = {
      config: a.config as TrafficConfig,
      cqn: own.cqn,
      lkey,
      qps: own.layouts.map((l, i) => ({ ...l, peerWriteArea: peer.layouts[i].writeArea, peerRkey: peer.rkey, posted: 0, completed: 0, received: 0, recvPosted: 0 })),
      violations: [],
    };
    traffic = trafficOn(v, state);
  },
  start() {
    need(traffic, 'traffic').start();
  },
  /** Wait until the traffic has made `ops` completions on every QP (mid-traffic checkpoint). */
  async progress(a) {
    const t = need(traffic, 'traffic');
    const deadline = Date.now() + 20_000;
    while (t.state.qps.some((q) => q.completed < (a.completed as number))) {
      if (Date.now() > deadline) throw new Error('no progress');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  },
  /** Take a VM in; `damage` spoils the states it gets first (the source must take its VM back). */
  async listen(a) {
    const damage = a.damage as 'device-byte' | 'device-truncate' | 'device-version' | 'guest' | 'preview' | undefined;
    listener = listenForMigration<Vm>({ host: a.host as string, port: 0 }, {
      vetVm: (parts) => {
        if (damage === 'preview') parts.deviceState[Math.floor(parts.deviceState.length / 2)] ^= 0x40;
        return Vm.vet(parts, { provider });
      },
      restoreVm: (parts) => {
        if (damage === 'device-byte') parts.deviceState[Math.floor(parts.deviceState.length / 2)] ^= 0x40;
        if (damage === 'device-truncate') parts.deviceState = parts.deviceState.subarray(0, parts.deviceState.length - 100);
        if (damage === 'device-version') {
          // A well-formed state of a format major this host does not read (checksum made good).
          const v = new DataView(parts.deviceState.buffer, parts.deviceState.byteOffset, parts.deviceState.byteLength);
          v.setUint16(8, STATE_MAJOR + 1, true);
          v.setUint32(28, stateChecksum(parts.deviceState), true);
        }
        if (damage === 'guest') parts.guestState = new TextEncoder().encode('{"kind":"vrdma-vm-guest","driver":{}}');
        return Vm.restore(parts, { provider });
      },
      resumeGuest: (v, app) => {
        vm = v;
        traffic = trafficOn(v, JSON.parse(new TextDecoder().decode(app)) as TrafficState);
        traffic.start();
      },
    });
    return (await listener.ready).port;
  },
  async accepted() {
    const m: IncomingMigration<Vm> = await need(listener, 'listener').accepted;
    return { qpns: [...m.vm.guest.qps.keys()], resumed: m.resumed.map((q) => q.qpn) };
  },
  async migrate(a) {
    const v = need(vm, 'VM');
    const t = need(traffic, 'traffic');
    const report = await migrateOut(v, { host: a.host as string, port: a.port as number }, {
      pauseGuest: async () => {
        guestPauses++;
        return new TextEncoder().encode(JSON.stringify(await t.pause()));
      },
      resumeGuest: () => t.start(),
      precopy: a.precopy as { stopBelowPages: number; maxRounds: number } | undefined,
      suspendPolicy: a.suspendPolicy as 'rnr-nak' | 'drop' | undefined,
    });
    vm = null;
    traffic = null;
    return report;
  },
  async finish(a) {
    const t = need(traffic, 'traffic');
    await t.finished((a.timeoutMs as number | undefined) ?? 30_000);
    return (await t.pause());
  },
  /** Which of this VM's WRITE slots and counters differ from what the peer's WRITEs and fetch-adds left. */
  verifyWrites(a) {
    const v = need(vm, 'VM');
    const state = need(traffic, 'traffic').state;
    const bad: string[] = [];
    state.qps.forEach((q, i) => {
      expectedWrites(state.config, a.peerSide as number, i).forEach((want, slot) => {
        if (want === null) return;
        const have = v.bytes(q.writeArea + slot * state.config.messageBytes, want.length);
        if (!Buffer.from(have).equals(Buffer.from(want))) bad.push(`QP ${q.qpn} slot ${slot}`);
      });
      const counter = new DataView(v.bytes(q.writeArea + state.config.slots * state.config.messageBytes, 8).slice().buffer);
      const value = counter.getUint32(0, true) + counter.getUint32(4, true) * 2 ** 32;
      if (value !== expectedCounter(state.config.ops)) bad.push(`QP ${q.qpn} counter ${value}, expected ${expectedCounter(state.config.ops)}`);
    });
    return bad;
  },
  /** QPNs and their provider states, and the MR keys, as the VM has them now. */
  identity() {
    const v = need(vm, 'VM');
    return { qpns: [...v.guest.qps.keys()], states: [...v.guest.qps.keys()].map((q) => v.verbs.queryQp(q).qpState), lkey: need(traffic, 'traffic').state.lkey, guestPauses };
  },
  async close() {
    await traffic?.pause();
    await vm?.close();
    await listener?.close();
    vm = null;
  },
};

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  serveIpc(ops, () => {
    void Promise.resolve(ops.close({})).finally(() => process.exit(0));
  });
}
