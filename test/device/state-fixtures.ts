// Two VMs in one process for the device state tests, each the whole public path (guest library ->
// virtio-rdma device -> SoftRoce -> loopback hub), and the move of one of them: its RAM copied
// into a new DeviceMemory, a new provider on the same address, a new device restored from the
// saved state, and the guest driver carried over as a vCPU's state would be.
import { AccessFlag, AttrMask, QpTypeCode } from '../../src/device/abi.js';
import { RdmaDevice } from '../../src/device/device.js';
import { RdmaGuest, ahAttr } from '../../src/guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../../src/guest/rdma/objects.js';
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import type { LoopbackHub } from '../../src/net/loopback.js';
import { QpState } from '../../src/nic/qp-state.js';
import { SoftRoce } from '../../src/nic/soft/soft-roce.js';

export const MiB = 1024 * 1024;
export const RAM = 16 * MiB;
export const DATA = 8 * MiB;
export const DATA_BYTES = 4 * MiB;
export const IOVA = 0x7f00_0000_0000;
export const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;
const LAYOUT = { ramBytes: RAM, arenaBytes: 12 * MiB };
const DEVICE_CONFIG = { maxCq: 8, maxQp: 8, maxSrq: 4, maxPd: 8, maxMr: 16, maxAh: 8 };

export interface TestVm {
  ip: string;
  dm: DeviceMemory;
  verbs: SoftRoce;
  device: RdmaDevice;
  guest: RdmaGuest;
  pd: number;
  cq: GuestCq;
  qp: GuestQp;
  lkey: number;
  rkey: number;
}

/** The destination's half: memory with the guest's RAM copied in, a provider, a device. */
export function destination(hub: LoopbackHub, ip: string, from: DeviceMemory | null): { dm: DeviceMemory; verbs: SoftRoce; device: RdmaDevice } {
  const dm = DeviceMemory.create(LAYOUT);
  dm.addRegion(0, RAM);
  if (from !== null) dm.guest.write(gpa(0), from.guest.slice(gpa(0), RAM));
  const verbs = new SoftRoce(dm, hub.attach(ip));
  const device = new RdmaDevice({ verbs, dm, vmIp: ip, inline: true, config: DEVICE_CONFIG });
  return { dm, verbs, device };
}

export async function openVm(hub: LoopbackHub, ip: string, packed = false): Promise<TestVm> {
  const { dm, verbs, device } = destination(hub, ip, null);
  const guest = RdmaGuest.open(device.transport, dm.guest, new Arena(0x10000, DATA - 0x10000), { packed });
  const pd = await guest.createPd();
  const cq = await guest.createCq(64);
  const qp = await guest.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 } });
  const pages = Array.from({ length: DATA_BYTES / 4096 }, (_, i) => DATA + i * 4096);
  const mr = await guest.regPhysMr(pd, ALL, { iova: IOVA, length: DATA_BYTES, pageShift: 12, pages });
  return { ip, dm, verbs, device, guest, pd, cq, qp, lkey: mr.lkey, rkey: mr.rkey };
}

export async function connect(a: TestVm, b: TestVm): Promise<void> {
  for (const [self, peer] of [[a, b], [b, a]] as const) {
    await self.qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS, { qpState: QpState.Init, qpAccessFlags: ALL & ~AccessFlag.LOCAL_WRITE });
    await self.qp.modify(
      AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
      { qpState: QpState.Rtr, ahAttr: ahAttr(peer.ip, 0), pathMtu: 3, destQpNum: peer.qp.qpn, rqPsn: 0xffff00, maxDestRdAtomic: 8, minRnrTimer: 1 },
    );
    await self.qp.modify(
      AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
      { qpState: QpState.Rts, sqPsn: 0xffff00, timeout: 12, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 8 },
    );
  }
}
