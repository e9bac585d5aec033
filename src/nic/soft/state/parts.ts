// What saving and restoring reach inside one SoftRoce: its object tables, allocators, counters
// and factories. SoftRoce hands this to capture.ts and rebuild.ts and to nothing else, so the
// state code stays out of the provider's file while the provider keeps its fields private.
import type { DeviceMemory } from '../../../memory/device-memory.js';
import type { IdAllocator } from '../../ids.js';
import type { PathMtu } from '../../types.js';
import type { AddressVector, CreateQpOptions, DeviceLimits } from '../../verbs.js';
import type { SoftCq } from '../cq.js';
import type { GidTable } from '../gid-table.js';
import type { MrTable } from '../mr-table.js';
import type { SoftQp } from '../qp.js';
import type { SoftSrq } from '../srq.js';

export interface SoftAh {
  readonly pd: number;
  readonly av: AddressVector;
}

/** Why packets were dropped, and other counters, for tests and statistics. */
export interface SoftRoceCounters {
  dropped: Map<string, number>;
  /** Transport events (go-back-Ns, PSNs resent, timeouts, NAKs), to see where time goes under loss. */
  events: Map<string, number>;
  /** Exceptions the engine contained (a bug if ever non-zero). */
  internalErrors: number;
  lastInternalError: unknown;
}

export interface SoftRoceParts {
  readonly dm: DeviceMemory;
  readonly localIp: string;
  readonly limits: DeviceLimits;
  readonly portMtu: PathMtu;
  readonly counters: SoftRoceCounters;
  readonly wireCounters: { sent: number; received: number };
  readonly mrs: MrTable;
  readonly gids: GidTable;
  readonly ids: { readonly pd: IdAllocator; readonly cq: IdAllocator; readonly qp: IdAllocator; readonly srq: IdAllocator; readonly ah: IdAllocator };
  readonly pds: Set<number>;
  readonly cqs: Map<number, SoftCq>;
  readonly qps: Map<number, SoftQp>;
  readonly srqs: Map<number, SoftSrq>;
  readonly ahs: Map<number, SoftAh>;
  newCq(handle: number, depth: number): SoftCq;
  newSrq(handle: number, pd: number, maxWr: number, maxSge: number, limit: number): SoftSrq;
  newQp(qpn: number, options: CreateQpOptions, sendCq: SoftCq, recvCq: SoftCq, srq: SoftSrq | null): SoftQp;
}
