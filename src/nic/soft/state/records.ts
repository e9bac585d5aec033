// Record types of a provider (SoftRoce) state buffer (docs/state-format.md, "Provider records").

export enum ProviderRecord {
  Provider = 0x0101,
  Allocators = 0x0102,
  Gid = 0x0103,
  Pd = 0x0104,
  Mr = 0x0105,
  Cq = 0x0106,
  Srq = 0x0107,
  Ah = 0x0108,
  Qp = 0x0109,
  Counters = 0x010a,
}

export const PROVIDER_RECORD_NAMES: ReadonlyMap<number, string> = new Map([
  [ProviderRecord.Provider, 'PROVIDER'],
  [ProviderRecord.Allocators, 'ALLOCATORS'],
  [ProviderRecord.Gid, 'GID'],
  [ProviderRecord.Pd, 'PD'],
  [ProviderRecord.Mr, 'MR'],
  [ProviderRecord.Cq, 'CQ'],
  [ProviderRecord.Srq, 'SRQ'],
  [ProviderRecord.Ah, 'AH'],
  [ProviderRecord.Qp, 'QP'],
  [ProviderRecord.Counters, 'COUNTERS'],
]);

/** Bounds a decoder applies before the destination's own limits (check.ts) are known. */
export const MAX_LIST = 1 << 24;
export const MAX_SGES = 1024;
export const MAX_INLINE_BYTES = 1 << 16;
/** A held packet is one RoCE packet: BTH through ICRC fits an IPv4 datagram. */
export const MAX_PACKET_BYTES = 65535;
