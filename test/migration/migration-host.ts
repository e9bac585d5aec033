// A host process for the two-process migration tests: one VM on real UDP (src/host/vm.ts) with N
// RC QPs running checked traffic (rc-traffic.ts), driven over the fork IPC channel like
// test/e2e/vm-child.ts: {id, op, args} in, {id, result} or {id, error} out. It can send its VM
// away (migrateOut) or take one in (listenForMigration) and carry on its traffic there.
// Does nothing when imported.
import { pathToFileURL } from 'node:url';
import { serveIpc } from '../../src/host/ipc.js';
import { Vm } from '../../src/host/vm.js';
import { type IncomingMigration, type MigrationListener, listenForMigration, migrateOut } from '../../src/migration/index.js';
import type { SoftRoceOptions } from '../../src/nic/soft/options.js';
import { STATE_MAJOR, stateChecksum } from '../../src/state/header.js';
import type { RcTraffic, TrafficConfig, TrafficState } from './rc-traffic.js';
import { type TrafficSetup, badWrites, connectTraffic, setUpTraffic, trafficOn } from '../backend/traffic-vms.js';

let vm: Vm | null = null;
let traffic: RcTraffic | null = null;
/** How often a migration stopped this host's guest (a vetted refusal must not). */
let guestPauses = 0;
let listener: MigrationListener<Vm> | null = null;
let provider: SoftRoceOptions | undefined;

function need<T>(x: T | null, what: string): T {
  if (x === null) throw new Error(`no ${what} here`);
  return x;
}

type Args = Record<string, unknown>;

const ops: Record<string, (a: Args) => unknown> = {
  async open(a) {
    provider = a.provider as SoftRoceOptions | undefined;
    const v = await Vm.open({ ip: a.ip as string, ramBytes: (a.ramBytes as number | undefined) ?? 32 << 20, provider });
    vm = v;
    const setup = await setUpTraffic(v, a.qps as number, a.config as TrafficConfig);
    traffic = null;
    return setup;
  },
  /** Connect QP i to the peer's QP i and get the traffic ready (not started). */
  async connect(a) {
    traffic = await connectTraffic(need(vm, 'VM'), a.own as TrafficSetup, a.peer as { ip: string } & TrafficSetup, a.config as TrafficConfig, (a.attrs as object | undefined) ?? {});
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
    return badWrites(need(vm, 'VM'), need(traffic, 'traffic').state, a.peerSide as number);
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
