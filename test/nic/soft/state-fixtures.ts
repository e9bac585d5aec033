// Providers for the state tests: a SoftRoce holding one object of every kind with work in every
// stage (posted, outstanding, unacknowledged, completed but unpolled), and the move of a provider
// to a new DeviceMemory whose RAM is a copy of the old one, on the same address of the hub.
import { DeviceMemory, type Gpa, gpa } from '../../../src/memory/index.js';
import type { LoopbackHub } from '../../../src/net/loopback.js';
import { QpAttr, QpState, QpType } from '../../../src/nic/qp-state.js';
import { SoftRoce, type SoftRoceOptions } from '../../../src/nic/soft/index.js';
import { Access, PathMtu, SendFlags, WrOpcode } from '../../../src/nic/types.js';
import type { MrKeys } from '../../../src/nic/verbs.js';
import { BUF_BYTES, BUF_GPA, BUF_IOVA, KiB, MiB, RAM_BYTES, RAM_GPA, pattern } from './fixtures.js';

export const LAYOUT = { ramBytes: 16 * MiB, arenaBytes: 8 * MiB };
export const OPTIONS: SoftRoceOptions = { limits: { maxQp: 64, maxCq: 64, maxMr: 256, maxPd: 16, maxSrq: 8, maxAh: 16 }, portMtu: PathMtu.Mtu2048 };

export interface Rich {
  readonly ip: string;
  readonly dm: DeviceMemory;
  readonly dev: SoftRoce;
  readonly pd: number;
  readonly pd2: number;
  readonly cq: number;
  readonly cq2: number;
  readonly mr: MrKeys;
  readonly all: MrKeys;
  readonly srq: number;
  readonly ah: number;
  /** RC QPs connected to the peer, and a UD QP. */
  readonly rc: number;
  readonly rcSrq: number;
  readonly ud: number;
}

export function bare(hub: LoopbackHub, ip: string, dm = memory(), o: SoftRoceOptions = OPTIONS): { dm: DeviceMemory; dev: SoftRoce } {
  return { dm, dev: new SoftRoce(dm, hub.attach(ip), o) };
}

export function memory(): DeviceMemory {
  const dm = DeviceMemory.create(LAYOUT);
  dm.addRegion(RAM_GPA, RAM_BYTES);
  return dm;
}

/** A new DeviceMemory with the same regions and a copy of their bytes (what pre-copy delivers). */
export function copyRam(from: DeviceMemory): DeviceMemory {
  const dm = memory();
  dm.guest.write(gpa(RAM_GPA), from.guest.slice(gpa(RAM_GPA), RAM_BYTES));
  return dm;
}

const pages = (at: number, bytes: number): Gpa[] => Array.from({ length: Math.ceil(bytes / 4096) }, (_, i) => gpa(at + i * 4096));

/** Bring an RC QP to RTS towards `peerIp`/`peerQpn`. */
export function toRts(dev: SoftRoce, qpn: number, peerIp: string, peerQpn: number, sqPsn: number, rqPsn: number): void {
  const A = QpAttr;
  dev.modifyQp(qpn, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qpAccessFlags: Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC }, A.STATE | A.PKEY_INDEX | A.PORT | A.ACCESS_FLAGS);
  dev.modifyQp(qpn, {
    qpState: QpState.Rtr, pathMtu: PathMtu.Mtu1024, destQpNum: peerQpn, rqPsn, maxDestRdAtomic: 4, minRnrTimer: 1,
    ahAttr: { dgid: peerIp, sgidIndex: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, sl: 0 },
  }, A.STATE | A.AV | A.PATH_MTU | A.DEST_QPN | A.RQ_PSN | A.MAX_DEST_RD_ATOMIC | A.MIN_RNR_TIMER);
  dev.modifyQp(qpn, { qpState: QpState.Rts, sqPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 }, A.STATE | A.SQ_PSN | A.TIMEOUT | A.RETRY_CNT | A.RNR_RETRY | A.MAX_QP_RD_ATOMIC);
}

/**
 * A provider with every kind of object, whose RC QP has sent SENDs the peer cannot take (no
 * receive WQE: the peer answers RNR NAK, the WQEs stay unacknowledged), a READ and a WRITE
 * outstanding, receive WQEs posted, and completions queued but not polled.
 */
export function rich(hub: LoopbackHub, ip: string, peer: { ip: string; qpn: number; rkey: number }): Rich {
  const peerIp = peer.ip;
  const { dm, dev } = bare(hub, ip);
  dev.addGid(2, '10.9.8.7');
  const pd = dev.allocPd();
  const pd2 = dev.allocPd();
  const gone = dev.allocPd();
  dev.deallocPd(gone);
  const cq = dev.createCq(256);
  const cq2 = dev.createCq(8);
  dev.reqNotifyCq(cq2, true);
  const mr = dev.registerPhysical(pd, { iova: BUF_IOVA + 123, length: BUF_BYTES - 4096, access: Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ | Access.REMOTE_ATOMIC, pageShift: 12, pages: pages(BUF_GPA, BUF_BYTES) });
  // A freed key: its index comes back with the next tag.
  const dead = dev.registerPhysical(pd2, { iova: 0x5000, length: 64 * KiB, access: Access.LOCAL_WRITE, pageShift: 12, pages: pages(RAM_GPA, 64 * KiB) });
  dev.deregMr(dead.lkey);
  const all = dev.registerAll(pd2, Access.LOCAL_WRITE | Access.REMOTE_READ);
  const srq = dev.createSrq(pd, 16, 2, 4);
  dev.postSrqRecv(srq, [1, 2, 3].map((i) => ({ wrId: BigInt(100 + i), sgList: [{ addr: BUF_IOVA + 4096 * i, length: 512, lkey: mr.lkey }] })));
  const ah = dev.createAh(pd, { dgid: peerIp, sgidIndex: 0, hopLimit: 32, trafficClass: 4, flowLabel: 0x12345, sl: 3 });
  const cap = { maxSendWr: 32, maxRecvWr: 32, maxSendSge: 4, maxRecvSge: 4, maxInlineBytes: 64 };
  const rc = dev.createQp({ type: QpType.Rc, pd, sendCq: cq, recvCq: cq, cap, sigAll: false, qpn: 0x4242 });
  const rcSrq = dev.createQp({ type: QpType.Rc, pd, sendCq: cq2, recvCq: cq, srq, cap: { ...cap, maxRecvWr: 0 }, sigAll: true });
  const ud = dev.createQp({ type: QpType.Ud, pd: pd2, sendCq: cq2, recvCq: cq2, cap, sigAll: true });
  dev.modifyQp(ud, { qpState: QpState.Init, pkeyIndex: 0, portNum: 1, qkey: 0x1111 }, QpAttr.STATE | QpAttr.PKEY_INDEX | QpAttr.PORT | QpAttr.QKEY);
  dev.postRecv(ud, [{ wrId: 9n, sgList: [{ addr: 0, length: 4096, lkey: all.lkey }] }]);
  toRts(dev, rc, peerIp, peer.qpn, 0xfffff0, 0x100);
  dm.guest.write(gpa(BUF_GPA), pattern(8192, 7));
  dev.postRecv(rc, [{ wrId: 7n, sgList: [{ addr: BUF_IOVA + 8192, length: 4096, lkey: mr.lkey }] }]);
  dev.postSend(rc, [
    { wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA + 123, length: 3000, lkey: mr.lkey }], remoteAddr: BUF_IOVA + 200_000, rkey: peer.rkey },
    { wrId: 2n, opcode: WrOpcode.Send, flags: SendFlags.SIGNALED | SendFlags.INLINE, sgList: [], inline: Uint8Array.of(1, 2, 3, 4, 5) },
    { wrId: 3n, opcode: WrOpcode.SendWithImm, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA + 500, length: 2500, lkey: mr.lkey }], immData: 0xcafe },
    { wrId: 4n, opcode: WrOpcode.RdmaRead, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA + 300_000, length: 5000, lkey: mr.lkey }], remoteAddr: BUF_IOVA + 100_000, rkey: peer.rkey },
    { wrId: 5n, opcode: WrOpcode.AtomicFetchAndAdd, flags: SendFlags.SIGNALED, sgList: [{ addr: BUF_IOVA + 400_000, length: 8, lkey: mr.lkey }], remoteAddr: BUF_IOVA + 8, rkey: peer.rkey, compareAdd: 5n },
  ]);
  return { ip, dm, dev, pd, pd2, cq, cq2, mr, all, srq, ah, rc, rcSrq, ud };
}
