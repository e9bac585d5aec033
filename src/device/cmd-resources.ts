// Commands for the device, the port, PDs, AHs and GIDs (docs/device-spec.md §7.2, §7.3, §7.6,
// §7.15, §7.16). Each validates everything, then makes one provider call, then records the
// result, so a failure leaves the device as it was.
import { RdmaFeature, RdmaStatus } from './abi.js';
import { gidToIpv4, setU64 } from './bytes.js';
import type { CommandContext } from './control.js';
import { DeviceError, badHandle, invalidArg, notSupported } from './errors.js';
import { readAhAttr } from './structs.js';
import { checkAhAttr, checkReservedZero } from './validate.js';

/** ibv_port_state / phys_state values and IBTA CapabilityMask bits (§7.3). */
const PORT_ACTIVE = 4;
const PHYS_LINK_UP = 5;
const CAP_CM_SUPPORTED = 1 << 16;
const CAP_IP_BASED_GIDS = 1 << 26;
const LINK_LAYER_ETHERNET = 2;

export function handleQueryDevice({ core, resp: r }: CommandContext): void {
  const c = core.config;
  setU64(r, 0, c.deviceCapFlags);
  setU64(r, 8, c.maxMrSize);
  setU64(r, 16, c.pageSizeCap);
  const u32 = (off: number, v: number) => r.setUint32(off, v, true);
  u32(24, c.hwVer);
  u32(28, c.maxQpWr);
  u32(32, c.maxSendSge);
  u32(36, c.maxRecvSge);
  u32(40, c.maxSgeRd);
  u32(44, c.maxCqe);
  u32(48, c.maxMr);
  u32(52, c.maxPd);
  u32(56, c.maxQpRdAtom);
  u32(60, c.maxQpInitRdAtom);
  u32(64, c.maxAh);
  r.setUint8(68, c.localCaAckDelay);
  r.setUint8(69, c.atomicCap);
  u32(72, c.maxQp);
  u32(76, c.maxCq);
  u32(80, c.maxSrq);
  u32(84, c.maxSrqWr);
  u32(88, c.maxSrqSge);
  u32(92, c.maxInlineData);
  u32(96, c.maxPhysMrPages);
  u32(100, c.vendorId);
  u32(104, c.vendorPartId);
  setU64(r, 112, c.sysImageGuid);
}

export function handleQueryPort({ core, resp: r }: CommandContext): void {
  const c = core.config;
  r.setUint32(0, c.gidTblLen, true);
  r.setUint32(4, c.maxMsgSz, true);
  // The port is ACTIVE while the VM's address is bound; the device exists only then.
  r.setUint8(8, PORT_ACTIVE);
  r.setUint8(9, c.maxMtu);
  r.setUint8(10, c.activeMtu);
  r.setUint8(11, PHYS_LINK_UP);
  r.setUint32(12, CAP_CM_SUPPORTED | CAP_IP_BASED_GIDS, true);
  r.setUint16(16, c.pkeyTblLen, true);
  r.setUint8(18, 1);
  r.setUint8(19, 1);
  r.setUint8(20, LINK_LAYER_ETHERNET);
}

export function handleCreatePd({ core, resp }: CommandContext): void {
  if (core.pds.size >= core.config.maxPd) throw new DeviceError(RdmaStatus.NoResources, `${core.config.maxPd} PDs are live`);
  const verbsPd = core.verbs.allocPd();
  const handle = core.pdIds.allocate();
  core.pds.set(handle, { handle, verbsPd });
  resp.setUint32(0, handle, true);
}

export function handleDestroyPd({ core, req }: CommandContext): void {
  const pd = core.pd(req.getUint32(0, true));
  core.checkPdUnused(pd.handle);
  core.verbs.deallocPd(pd.verbsPd);
  core.pds.delete(pd.handle);
  core.pdIds.release(pd.handle);
}

export function handleCreateAh({ core, req, resp }: CommandContext): void {
  if (!core.has(RdmaFeature.UD)) throw notSupported('address handles need VIRTIO_RDMA_F_UD');
  checkReservedZero(req, 4, 8, 'CREATE_AH');
  const attr = readAhAttr(req, 8);
  const av = checkAhAttr(core, attr);
  const pd = core.pd(req.getUint32(0, true));
  if (core.ahs.size >= core.config.maxAh) throw new DeviceError(RdmaStatus.NoResources, `${core.config.maxAh} AHs are live`);
  const verbsAh = core.verbs.createAh(pd.verbsPd, av);
  const handle = core.ahIds.allocate();
  core.ahs.set(handle, { handle, pd: pd.handle, verbsAh, sgidIndex: attr.sgidIndex });
  resp.setUint32(0, handle, true);
}

export function handleDestroyAh({ core, req }: CommandContext): void {
  const pd = req.getUint32(0, true);
  const ah = core.ah(req.getUint32(4, true));
  if (ah.pd !== pd) throw badHandle(`AH ${ah.handle} belongs to another PD`);
  core.verbs.destroyAh(ah.verbsAh);
  core.ahs.delete(ah.handle);
  core.ahIds.release(ah.handle);
}

export function handleAddGid({ core, req }: CommandContext): void {
  const index = req.getUint16(0, true);
  checkReservedZero(req, 2, 8, 'ADD_GID');
  const gid = gidToIpv4(new Uint8Array(req.buffer, req.byteOffset + 8, 16));
  if (index >= core.config.gidTblLen) throw invalidArg(`GID index ${index} is outside the table of ${core.config.gidTblLen}`);
  if (gid === null) throw invalidArg('GID is not IPv4-mapped');
  if (index === 0) throw new DeviceError(RdmaStatus.AccessDenied, 'GID index 0 is owned by the device');
  // A VM may send only as its own addresses (R7): the host says which those are.
  if (gid !== core.config.defaultGid && !core.policy.assignedGids.includes(gid)) {
    throw new DeviceError(RdmaStatus.AccessDenied, `GID ${gid} is not assigned to this VM`);
  }
  const current = core.gids[index];
  if (current === gid) return;
  if (current !== null) throw new DeviceError(RdmaStatus.Exists, `GID index ${index} holds ${current}`);
  core.verbs.addGid(index, gid);
  core.gids[index] = gid;
}

export function handleDelGid({ core, req }: CommandContext): void {
  const index = req.getUint16(0, true);
  checkReservedZero(req, 2, 4, 'DEL_GID');
  if (index >= core.config.gidTblLen) throw invalidArg(`GID index ${index} is outside the table`);
  if (index === 0) throw new DeviceError(RdmaStatus.AccessDenied, 'GID index 0 is owned by the device');
  if (core.gids[index] === null) throw badHandle(`GID index ${index} is empty`);
  for (const ah of core.ahs.values()) if (ah.sgidIndex === index) throw new DeviceError(RdmaStatus.Busy, `AH ${ah.handle} uses GID ${index}`);
  for (const qp of core.qps.values()) if (qp.sgidIndex === index) throw new DeviceError(RdmaStatus.Busy, `QP ${qp.qpn} uses GID ${index}`);
  core.verbs.delGid(index);
  core.gids[index] = null;
}
