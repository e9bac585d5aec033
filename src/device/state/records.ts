// Record types of a device state buffer (docs/state-format.md, "Device records").

export enum DeviceRecord {
  Transport = 0x0201,
  Queue = 0x0202,
  Allocators = 0x0203,
  Gid = 0x0204,
  Pd = 0x0205,
  Mr = 0x0206,
  Ah = 0x0207,
  Cq = 0x0208,
  Qp = 0x0209,
  Srq = 0x020a,
  Events = 0x020b,
  Provider = 0x020c,
}

export const DEVICE_RECORD_NAMES: ReadonlyMap<number, string> = new Map([
  [DeviceRecord.Transport, 'TRANSPORT'],
  [DeviceRecord.Queue, 'QUEUE'],
  [DeviceRecord.Allocators, 'DEVICE ALLOCATORS'],
  [DeviceRecord.Gid, 'DEVICE GID'],
  [DeviceRecord.Pd, 'DEVICE PD'],
  [DeviceRecord.Mr, 'DEVICE MR'],
  [DeviceRecord.Ah, 'DEVICE AH'],
  [DeviceRecord.Cq, 'DEVICE CQ'],
  [DeviceRecord.Qp, 'DEVICE QP'],
  [DeviceRecord.Srq, 'DEVICE SRQ'],
  [DeviceRecord.Events, 'EVENTS'],
  [DeviceRecord.Provider, 'PROVIDER STATE'],
]);
