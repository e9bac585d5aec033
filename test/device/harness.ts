// A device under test: guest RAM, a recording provider, the device (inline: it runs right after
// each kick, as a vCPU exit handled in place), and the guest library opened on it.
import { RdmaDevice, type RdmaDeviceOptions } from '../../src/device/device.js';
import { AccessFlag, AttrMask, QpTypeCode } from '../../src/device/abi.js';
import { QpState } from '../../src/nic/qp-state.js';
import { RdmaGuest, type OpenOptions, ahAttr } from '../../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { RecordingVerbs } from './recording-verbs.js';

export const MiB = 1024 * 1024;
export const RAM_BYTES = 16 * MiB;
/** Guest-physical areas: rings and driver buffers, then data buffers the tests register. */
export const DRIVER_AREA = 0x10000;
export const DATA_AREA = 8 * MiB;
export const VM_IP = '127.0.1.5';
export const SECOND_IP = '127.0.1.6';

export interface Rig {
  dm: DeviceMemory;
  verbs: RecordingVerbs;
  device: RdmaDevice;
  guest: RdmaGuest;
  alloc: Arena;
}

export function rig(options: { device?: Partial<RdmaDeviceOptions>; open?: OpenOptions; verbs?: RecordingVerbs } = {}): Rig {
  const dm = DeviceMemory.create({ ramBytes: RAM_BYTES, arenaBytes: 4 * MiB });
  dm.addRegion(0, RAM_BYTES);
  const verbs = options.verbs ?? new RecordingVerbs();
  const device = new RdmaDevice({
    verbs, dm, vmIp: VM_IP, assignedGids: [SECOND_IP], inline: true,
    config: { maxCq: 8, maxQp: 8, maxSrq: 4, maxPd: 16, maxMr: 32, maxAh: 16 },
    ...options.device,
  });
  const alloc = new Arena(DRIVER_AREA, DATA_AREA - DRIVER_AREA);
  const guest = RdmaGuest.open(device.transport, dm.guest, alloc, options.open);
  return { dm, verbs, device, guest, alloc };
}

export const RC: number = QpTypeCode.RC;
export const UD: number = QpTypeCode.UD;
export const LOCAL_RW = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ;

/** A PD, one CQ for both queues, and a QP of `type`, left in RESET. */
export async function basicQp(r: Rig, type = RC, cap: Partial<{ maxSendWr: number; maxRecvWr: number; maxSendSge: number; maxRecvSge: number; maxInlineData: number }> = {}, cqe = 64) {
  const pd = await r.guest.createPd();
  const cq = await r.guest.createCq(cqe);
  const qp = await r.guest.createQp({
    pd, type, sendCq: cq.cqn, recvCq: cq.cqn,
    cap: { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64, ...cap },
  });
  return { pd, cq, qp };
}

/** Move an RC QP RESET -> INIT -> RTR -> RTS (or a UD QP, with its own attributes). */
export async function toRts(qp: GuestQp, type = RC): Promise<void> {
  if (type === RC) {
    await qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS, { qpState: QpState.Init, qpAccessFlags: LOCAL_RW & ~1 });
    await qp.modify(
      AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
      { qpState: QpState.Rtr, ahAttr: ahAttr('127.0.2.9', 0), pathMtu: 5, destQpNum: 77, rqPsn: 100, maxDestRdAtomic: 4, minRnrTimer: 12 },
    );
    await qp.modify(
      AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
      { qpState: QpState.Rts, sqPsn: 200, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 },
    );
  } else {
    await qp.modify(AttrMask.STATE | AttrMask.QKEY, { qpState: QpState.Init, qkey: 0x11111111 });
    await qp.modify(AttrMask.STATE, { qpState: QpState.Rtr });
    await qp.modify(AttrMask.STATE | AttrMask.SQ_PSN, { qpState: QpState.Rts, sqPsn: 1 });
  }
}

/** Drain a CQ completely. */
export function pollAll(cq: GuestCq) {
  return cq.poll();
}

/** Everything a failed command must leave unchanged. */
export function snapshot(r: Rig): string {
  const c = r.device.core;
  const qps = [...c.qps.values()].map((q) => `${q.qpn}@${q.index}:${q.state}:${q.sgidIndex}:${q.qkey}`);
  const mrs = [...c.mrs.values()].map((m) => `${m.handle}:${m.pd}:${m.access}:${m.invalidatable}:${m.lkey}`);
  const cqs = c.cqs.map((q) => (q === null ? '-' : `${q.armed}/${q.cqesWritten}/${q.error}`));
  const srqs = c.srqs.map((s) => (s === null ? '-' : `${s.handle}:${s.limit}`));
  return [r.verbs.census(), [...c.pds.keys()], mrs, [...c.ahs.keys()], cqs, qps, srqs, c.gids, c.inFlight.size].map((x) => JSON.stringify(x)).join(' | ');
}

