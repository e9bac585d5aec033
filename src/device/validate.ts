// Field checks shared by several commands (docs/device-spec.md §7.1): access flags and address
// vectors. Each returns the verbs-layer value or throws the status the spec names.
import type { AddressVector } from '../nic/verbs.js';
import { ACCESS_KNOWN, AccessFlag, RdmaFeature } from './abi.js';
import { allZero, gidToIpv4 } from './bytes.js';
import type { DeviceCore } from './core.js';
import { invalidArg, notSupported } from './errors.js';
import type { AhAttr } from './structs.js';

/** MR access flags (§7.1): unknown bits and REMOTE_WRITE/ATOMIC without LOCAL_WRITE are invalid. */
export function checkMrAccess(core: DeviceCore, access: number): number {
  if ((access & ~ACCESS_KNOWN) !== 0) throw invalidArg(`unknown access bits 0x${(access & ~ACCESS_KNOWN).toString(16)}`);
  if (access & AccessFlag.REMOTE_ATOMIC && !core.has(RdmaFeature.ATOMIC)) throw notSupported('REMOTE_ATOMIC needs VIRTIO_RDMA_F_ATOMIC');
  if (access & AccessFlag.ON_DEMAND && !core.has(RdmaFeature.ODP)) throw notSupported('ON_DEMAND needs VIRTIO_RDMA_F_ODP');
  if (access & (AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_ATOMIC) && !(access & AccessFlag.LOCAL_WRITE)) {
    throw invalidArg('remote write and atomic access need LOCAL_WRITE');
  }
  return access;
}

/** QP access flags (§7.1: only bits 1-3 mean anything on a QP; 0 and 6 are ignored). */
export function checkQpAccess(core: DeviceCore, access: number): number {
  if ((access & ~ACCESS_KNOWN) !== 0) throw invalidArg(`unknown QP access bits 0x${(access & ~ACCESS_KNOWN).toString(16)}`);
  if (access & AccessFlag.REMOTE_ATOMIC && !core.has(RdmaFeature.ATOMIC)) throw notSupported('REMOTE_ATOMIC needs VIRTIO_RDMA_F_ATOMIC');
  return access & (AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC);
}

/** The populated GID at `index`, or INVALID_ARG (§7.12, §7.15). */
export function checkSgid(core: DeviceCore, index: number): string {
  const gid = index < core.gids.length ? core.gids[index] : null;
  if (gid === null || gid === undefined) throw invalidArg(`sgid_index ${index} names no GID`);
  return gid;
}

/** §7.1 ah_attr -> the verbs address vector. */
export function checkAhAttr(core: DeviceCore, a: AhAttr & { reservedZero: boolean }): AddressVector {
  if (!a.reservedZero) throw invalidArg('reserved ah_attr bytes are not zero');
  if (a.staticRate !== 0) throw notSupported('static_rate other than 0');
  const dgid = gidToIpv4(a.dgid);
  if (dgid === null) throw invalidArg('dgid is not an IPv4-mapped address (RoCE v2 over IPv4)');
  if (a.flowLabel >= 1 << 20) throw invalidArg(`flow_label ${a.flowLabel} exceeds 20 bits`);
  if (a.portNum > 1) throw invalidArg(`port_num ${a.portNum}`);
  if ((a.ahFlags & ~1) !== 0) throw invalidArg(`unknown ah_flags 0x${a.ahFlags.toString(16)}`);
  checkSgid(core, a.sgidIndex);
  return {
    dgid,
    sgidIndex: a.sgidIndex,
    hopLimit: a.hopLimit === 0 ? 64 : a.hopLimit,
    trafficClass: a.trafficClass,
    flowLabel: a.flowLabel,
    sl: a.sl,
  };
}

export function checkReservedZero(bytes: DataView, from: number, to: number, what: string): void {
  if (!allZero(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), from, to)) throw invalidArg(`reserved ${what} bytes are not zero`);
}
