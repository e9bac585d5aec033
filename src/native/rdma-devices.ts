// Which RDMA NICs this host has, for choosing the Ibverbs provider over SoftRoce (DESIGN.md
// "Layers", verbs). Works with or without the addon: without it, or without libibverbs at build
// time, the list is empty and says why. Nothing here ever reports a device that is not there.
import { type RdmaDeviceList, nativeStatus } from './addon.js';

export type { RdmaDevice, RdmaDeviceList } from './addon.js';

export function listRdmaDevices(): RdmaDeviceList {
  const status = nativeStatus();
  if (!status.available) return { verbsCompiledIn: false, devices: [], reason: status.reason };
  return status.addon.listRdmaDevices();
}
