// Checked RC traffic (test/migration/rc-traffic.ts) on VMs of either sort in this process — a
// Vm, its device in this thread, or a DurableVm, its device in a backend pool's worker — for the
// tests that migrate durable VMs. Not a test file.
import { AccessFlag, QpTypeCode } from '../../src/device/abi.js';
import type { RdmaGuest } from '../../src/guest/rdma/device.js';
import { connectRc } from '../../src/host/connect.js';
import {
  type DestinationVm, type ListenOptions, type MigrateOutOptions, type MigrationReport, type RestoreParts, type SourceVm, listenForMigration, migrateOut,
} from '../../src/migration/index.js';
import { type QpLayout, RcTraffic, type TrafficConfig, type TrafficState, expectedCounter, expectedWrites, writeAreaBytes } from '../migration/rc-traffic.js';

const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;

/** What the traffic needs of a VM: Vm and DurableVm both have it. */
export interface TrafficVm {
  readonly ip: string;
  readonly guest: RdmaGuest;
  allocBuffer(bytes: number, align?: number): number;
  writeBuffer(at: number, src: Uint8Array): void;
  bytes(at: number, len: number): Uint8Array;
}

export interface TrafficSetup {
  cqn: number;
  lkey: number;
  rkey: number;
  layouts: Omit<QpLayout, 'peerWriteArea' | 'peerRkey'>[];
}

/** A PD, an all-memory MR, one CQ and `qps` RC QPs with their buffers. */
export async function setUpTraffic(vm: TrafficVm, qps: number, config: TrafficConfig): Promise<TrafficSetup> {
  const g = vm.guest;
  const pd = await g.createPd();
  const cq = await g.createCq(qps * (config.window + config.recvDepth) + 16);
  const mr = await g.getDmaMr(pd, ALL);
  const layouts: TrafficSetup['layouts'] = [];
  for (let i = 0; i < qps; i++) {
    const cap = { maxSendWr: config.window, maxRecvWr: config.recvDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
    const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap });
    layouts.push({
      qpn: qp.qpn,
      sendBase: vm.allocBuffer(config.window * config.messageBytes),
      recvBase: vm.allocBuffer(config.recvDepth * config.messageBytes),
      writeArea: vm.allocBuffer(writeAreaBytes(config)),
    });
  }
  return { cqn: cq.cqn, lkey: mr.lkey, rkey: mr.rkey, layouts };
}

/** Connect QP i of `vm` to the peer's QP i; the traffic, ready to start. */
export async function connectTraffic(vm: TrafficVm, own: TrafficSetup, peer: { ip: string } & TrafficSetup, config: TrafficConfig, attrs: object): Promise<RcTraffic> {
  for (const [i, l] of own.layouts.entries()) {
    const qp = vm.guest.qps.get(l.qpn);
    if (qp === undefined) throw new Error(`no QP ${l.qpn}`);
    await connectRc(qp, 1000 + i, { qpn: peer.layouts[i].qpn, ip: peer.ip, psn: 1000 + i }, attrs);
  }
  return trafficOn(vm, {
    config,
    cqn: own.cqn,
    lkey: own.lkey,
    qps: own.layouts.map((l, i) => ({ ...l, peerWriteArea: peer.layouts[i].writeArea, peerRkey: peer.rkey, posted: 0, completed: 0, received: 0, recvPosted: 0 })),
    violations: [],
  });
}

/** The traffic of `state` on `vm`'s guest objects (a migrated VM's, found again by number). */
export function trafficOn(vm: TrafficVm, state: TrafficState): RcTraffic {
  return new RcTraffic(vm.guest, (at, bytes) => vm.writeBuffer(at, bytes), (at, len) => vm.bytes(at, len).slice(), state);
}

/** Which of `vm`'s WRITE slots and counters differ from what the peer (side `peerSide`) left there. */
export function badWrites(vm: TrafficVm, state: TrafficState, peerSide: number): string[] {
  const bad: string[] = [];
  const c = state.config;
  state.qps.forEach((q, i) => {
    expectedWrites(c, peerSide, i).forEach((want, slot) => {
      if (want === null) return;
      if (!Buffer.from(vm.bytes(q.writeArea + slot * c.messageBytes, want.length)).equals(Buffer.from(want))) bad.push(`QP ${q.qpn} slot ${slot}`);
    });
    const counter = new DataView(vm.bytes(q.writeArea + c.slots * c.messageBytes, 8).slice().buffer);
    const value = counter.getUint32(0, true) + counter.getUint32(4, true) * 2 ** 32;
    if (value !== expectedCounter(c.ops)) bad.push(`QP ${q.qpn} counter ${value}, expected ${expectedCounter(c.ops)}`);
  });
  return bad;
}

/**
 * Move `src`, running traffic `t`, to a listener on `host` that builds the VM with `restore` (and
 * vets the preview with `vet`): the traffic pauses with the guest, travels as the application's
 * state and resumes on the destination's guest objects. Returns the VM, its traffic and the report.
 */
export async function moveWithTraffic<V extends TrafficVm & DestinationVm>(
  src: TrafficVm & SourceVm, t: RcTraffic, dest: { host: string; restore(parts: RestoreParts): Promise<V>; vet: NonNullable<ListenOptions<V>['vetVm']> },
  options: Pick<MigrateOutOptions, 'onProgress' | 'precopy' | 'blackoutWatchMs'> = {},
): Promise<{ vm: V; traffic: RcTraffic; report: MigrationReport }> {
  let resumed: RcTraffic | null = null;
  const listener = listenForMigration<V>({ host: dest.host, port: 0 }, {
    vetVm: (parts) => dest.vet(parts),
    restoreVm: (parts) => dest.restore(parts),
    resumeGuest: (vm, app) => {
      resumed = trafficOn(vm, JSON.parse(new TextDecoder().decode(app)) as TrafficState);
      resumed.start();
    },
  });
  try {
    const { port } = await listener.ready;
    const report = await migrateOut(src, { host: dest.host, port }, {
      pauseGuest: async () => new TextEncoder().encode(JSON.stringify(await t.pause())),
      resumeGuest: () => t.start(),
      ...options,
    });
    const { vm } = await listener.accepted;
    if (resumed === null) throw new Error('the traffic did not resume on the destination');
    return { vm, traffic: resumed, report };
  } finally {
    await listener.close();
  }
}
