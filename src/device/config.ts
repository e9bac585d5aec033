// The device configuration space (docs/device-spec.md §4): plain data, its 144-byte encoding and
// decoding, and the defaults of §15 clamped to what the verbs provider can do. Constant for the
// life of the device: reset and migration do not change it.
import type { Verbs } from '../nic/verbs.js';
import { DeviceCap, RdmaFeature, featureBit } from './abi.js';
import { ipv4ToGid, gidToIpv4, setU64, u64n, u64 } from './bytes.js';

export const CONFIG_BYTES = 144;

export interface DeviceConfig {
  maxCq: number;
  maxQp: number;
  maxSrq: number;
  maxMr: number;
  maxPd: number;
  maxAh: number;
  maxCqe: number;
  maxQpWr: number;
  maxSrqWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxSrqSge: number;
  maxSgeRd: number;
  maxInlineData: number;
  maxMsgSz: number;
  maxQpRdAtom: number;
  maxQpInitRdAtom: number;
  maxPhysMrPages: number;
  maxMrSize: number;
  pageSizeCap: number;
  deviceCapFlags: number;
  sysImageGuid: bigint;
  vendorId: number;
  vendorPartId: number;
  hwVer: number;
  physPortCnt: number;
  gidTblLen: number;
  pkeyTblLen: number;
  localCaAckDelay: number;
  atomicCap: number;
  maxMtu: number;
  activeMtu: number;
  /** GID index 0: the VM's IPv4 address (R7). */
  defaultGid: string;
}

/**
 * Host-side knobs that are not guest-visible config: which addresses the host assigned to the VM
 * (the only GIDs ADD_GID accepts, §7.16) and how deep the provider CQs behind guest CQs are.
 */
export interface HostPolicy {
  assignedGids: readonly string[];
}

/** §15 defaults, clamped to the provider's limits; features decide the optional limits. */
export function defaultConfig(verbs: Verbs, vmIp: string, features: bigint, sysImageGuid = 0x5652444d41000001n): DeviceConfig {
  const l = verbs.limits;
  const has = (bit: number) => (features & featureBit(bit)) !== 0n;
  const min = (a: number, b: number) => Math.max(0, Math.min(a, b));
  const eventq = has(RdmaFeature.EVENTQ);
  let capFlags = DeviceCap.RC_RNR_NAK_GEN;
  if (has(RdmaFeature.SRQ) && eventq) capFlags |= DeviceCap.SRQ_LIMIT;
  if (eventq) capFlags |= DeviceCap.PORT_ACTIVE_EVENT;
  if (has(RdmaFeature.ODP)) capFlags |= DeviceCap.ON_DEMAND_PAGING;
  return {
    maxCq: min(256, l.maxCq),
    maxQp: min(256, l.maxQp),
    maxSrq: has(RdmaFeature.SRQ) ? min(64, l.maxSrq) : 0,
    maxMr: min(4096, l.maxMr),
    maxPd: min(1024, l.maxPd),
    maxAh: min(4096, l.maxAh),
    maxCqe: min(4096, l.maxCqe),
    maxQpWr: min(1024, l.maxQpWr),
    maxSrqWr: has(RdmaFeature.SRQ) ? min(4096, l.maxSrqWr) : 0,
    maxSendSge: min(16, l.maxSge),
    maxRecvSge: min(16, l.maxSge),
    maxSrqSge: has(RdmaFeature.SRQ) ? min(16, l.maxSge) : 0,
    maxSgeRd: min(16, l.maxSge),
    maxInlineData: has(RdmaFeature.INLINE) ? min(256, l.maxInlineBytes) : 0,
    maxMsgSz: min(2 ** 30, l.maxMsgBytes),
    maxQpRdAtom: min(16, l.maxQpRdAtom),
    maxQpInitRdAtom: min(16, l.maxQpInitRdAtom),
    maxPhysMrPages: 262144,
    maxMrSize: min(2 ** 40, l.maxMrBytes),
    // The verbs layer's physical registrations take 4 KiB and 2 MiB pages (PhysicalRegistration).
    pageSizeCap: 2 ** 12 + 2 ** 21,
    deviceCapFlags: capFlags,
    sysImageGuid,
    vendorId: 0,
    vendorPartId: 42,
    hwVer: 1,
    physPortCnt: 1,
    gidTblLen: min(16, l.maxGid),
    pkeyTblLen: 1,
    localCaAckDelay: 15,
    atomicCap: has(RdmaFeature.ATOMIC) ? 1 : 0,
    maxMtu: 5,
    activeMtu: 5,
    defaultGid: vmIp,
  };
}

export function encodeConfig(c: DeviceConfig): Uint8Array {
  const out = new Uint8Array(CONFIG_BYTES);
  const v = new DataView(out.buffer);
  const u32s = [
    c.maxCq, c.maxQp, c.maxSrq, c.maxMr, c.maxPd, c.maxAh, c.maxCqe, c.maxQpWr, c.maxSrqWr, c.maxSendSge,
    c.maxRecvSge, c.maxSrqSge, c.maxSgeRd, c.maxInlineData, c.maxMsgSz, c.maxQpRdAtom, c.maxQpInitRdAtom, c.maxPhysMrPages,
  ];
  u32s.forEach((value, i) => v.setUint32(i * 4, value, true));
  setU64(v, 72, c.maxMrSize);
  setU64(v, 80, c.pageSizeCap);
  setU64(v, 88, c.deviceCapFlags);
  setU64(v, 96, c.sysImageGuid);
  v.setUint32(104, c.vendorId, true);
  v.setUint32(108, c.vendorPartId, true);
  v.setUint32(112, c.hwVer, true);
  v.setUint16(116, c.physPortCnt, true);
  v.setUint16(118, c.gidTblLen, true);
  v.setUint16(120, c.pkeyTblLen, true);
  v.setUint8(122, c.localCaAckDelay);
  v.setUint8(123, c.atomicCap);
  v.setUint8(124, c.maxMtu);
  v.setUint8(125, c.activeMtu);
  out.set(ipv4ToGid(c.defaultGid), 128);
  return out;
}

export function decodeConfig(bytes: Uint8Array): DeviceConfig {
  if (bytes.length < CONFIG_BYTES) throw new RangeError(`config space is ${CONFIG_BYTES} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, CONFIG_BYTES);
  const r = (i: number) => v.getUint32(i * 4, true);
  const gid = gidToIpv4(bytes.subarray(128, 144));
  if (gid === null) throw new RangeError('default_gid is not IPv4-mapped');
  return {
    maxCq: r(0), maxQp: r(1), maxSrq: r(2), maxMr: r(3), maxPd: r(4), maxAh: r(5), maxCqe: r(6), maxQpWr: r(7),
    maxSrqWr: r(8), maxSendSge: r(9), maxRecvSge: r(10), maxSrqSge: r(11), maxSgeRd: r(12), maxInlineData: r(13),
    maxMsgSz: r(14), maxQpRdAtom: r(15), maxQpInitRdAtom: r(16), maxPhysMrPages: r(17),
    maxMrSize: u64n(v, 72),
    pageSizeCap: u64n(v, 80),
    deviceCapFlags: u64n(v, 88),
    sysImageGuid: u64(v, 96),
    vendorId: v.getUint32(104, true),
    vendorPartId: v.getUint32(108, true),
    hwVer: v.getUint32(112, true),
    physPortCnt: v.getUint16(116, true),
    gidTblLen: v.getUint16(118, true),
    pkeyTblLen: v.getUint16(120, true),
    localCaAckDelay: v.getUint8(122),
    atomicCap: v.getUint8(123),
    maxMtu: v.getUint8(124),
    activeMtu: v.getUint8(125),
    defaultGid: gid,
  };
}
