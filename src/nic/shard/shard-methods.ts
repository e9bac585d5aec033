// The calls a QP shard serves (sharded-verbs.ts): the verbs methods of its SoftRoce by name, and
// what the device thread asks of a shard besides (its counters; moving a QP out and in under its
// ownership word, qp-owners.ts; its completions flushed; the steering program replaced). The same
// table serves a shard on the device's own thread and one in a worker (shard-worker.ts), so both
// run exactly the same code; only the way the call arrives differs.
import { VerbsError, VerbsErrorCode } from '../errors.js';
import type { SoftRoce } from '../soft/soft-roce.js';
import type { QpOwners } from './qp-owners.js';

/** What a shard's calls run against. */
export interface ShardContext {
  roce: SoftRoce;
  index: number;
  owners: QpOwners;
  /** Push every completion the shard holds in `cqs` (and any other it was told of) towards the device now; how many CQs it still holds some of. */
  flushCompletions(cqs: readonly number[]): number;
  /** Replace the steering group's program (QPN, member pairs sent elsewhere than QPN mod N). */
  steer(overrides: Uint32Array): void;
}

/** Largest saved QP a shard hands over: its answer crosses the 64 KiB call area as base64. */
const MAX_SAVED_QP_BYTES = 40_000;

/** A shard's counters as plain data (the call channel carries JSON, not Maps). */
export interface ShardCounters {
  dropped: [string, number][];
  events: [string, number][];
  internalErrors: number;
  lastInternalError: string | null;
  sent: number;
  received: number;
}

type Method = (roce: SoftRoce, args: unknown[], ctx: ShardContext) => unknown;

/* eslint-disable @typescript-eslint/no-explicit-any -- arguments are checked by SoftRoce itself */
const METHODS: Record<string, Method> = {
  allocPd: (r) => r.allocPd(),
  deallocPd: (r, a) => r.deallocPd(a[0] as number),
  registerPhysical: (r, a) => r.registerPhysical(a[0] as number, a[1] as any),
  registerAll: (r, a) => r.registerAll(a[0] as number, a[1] as number),
  reregisterPhysical: (r, a) => r.reregisterPhysical(a[0] as number, a[1] as any),
  deregMr: (r, a) => r.deregMr(a[0] as number),
  createCq: (r, a) => r.createCq(a[0] as number),
  destroyCq: (r, a) => r.destroyCq(a[0] as number),
  createQp: (r, a) => r.createQp(a[0] as any),
  // Answers with the attributes after the change, which the facade keeps for a QP whose shard dies.
  modifyQp: (r, a) => {
    r.modifyQp(a[0] as number, a[1] as any, a[2] as number);
    return r.queryQp(a[0] as number);
  },
  queryQp: (r, a) => r.queryQp(a[0] as number),
  destroyQp: (r, a) => r.destroyQp(a[0] as number),
  createSrq: (r, a) => r.createSrq(a[0] as number, a[1] as number, a[2] as number, a[3] as number),
  modifySrq: (r, a) => r.modifySrq(a[0] as number, a[1] as number),
  destroySrq: (r, a) => r.destroySrq(a[0] as number),
  createAh: (r, a) => r.createAh(a[0] as number, a[1] as any),
  destroyAh: (r, a) => r.destroyAh(a[0] as number),
  addGid: (r, a) => r.addGid(a[0] as number, a[1] as string),
  delGid: (r, a) => r.delGid(a[0] as number),
  postSend: (r, a) => r.postSend(a[0] as number, a[1] as any),
  postRecv: (r, a) => r.postRecv(a[0] as number, a[1] as any),
  postSrqRecv: (r, a) => r.postSrqRecv(a[0] as number, a[1] as any),
  suspendQp: (r, a) => r.suspendQp(a[0] as number, a[1] as any),
  resumeQp: (r, a) => r.resumeQp(a[0] as number),
  counters: (r) => shardCounters(r),
  flushCompletions: (_r, a, ctx) => ctx.flushCompletions((a[0] ?? []) as number[]),
  steer: (_r, a, ctx) => ctx.steer(Uint32Array.from(a[0] as number[])),
  // Moving a QP: the owner saves it and gives it up under its ownership word; the taker loads it.
  takeQp: (r, a, ctx) => {
    const qpn = a[0] as number;
    const saved = r.saveQp(qpn);
    if (saved.length > MAX_SAVED_QP_BYTES) throw new VerbsError(VerbsErrorCode.NoResources, `QP ${qpn}'s state (${saved.length} bytes) is too large to move`);
    if (!ctx.owners.giveUp(qpn, ctx.index)) throw new VerbsError(VerbsErrorCode.Busy, `shard ${ctx.index} does not own QP ${qpn}`);
    r.detachQp(qpn);
    return saved;
  },
  loadQp: (r, a, ctx) => {
    const qpn = a[0] as number;
    if (!ctx.owners.take(qpn, ctx.index)) throw new VerbsError(VerbsErrorCode.Busy, `QP ${qpn} is not on its way to shard ${ctx.index}`);
    try {
      if (r.loadQp(a[1] as Uint8Array) !== qpn) throw new VerbsError(VerbsErrorCode.InvalidArgument, `the state loaded is not QP ${qpn}'s`);
    } catch (err) {
      ctx.owners.giveUp(qpn, ctx.index);
      throw err;
    }
    return null;
  },
};
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Run `method` on the shard; VerbsError INVALID_ARGUMENT for a method a shard does not serve. */
export function callShard(ctx: ShardContext, method: string, args: unknown[]): unknown {
  const fn = Object.hasOwn(METHODS, method) ? METHODS[method] : undefined;
  if (fn === undefined) throw new VerbsError(VerbsErrorCode.InvalidArgument, `a QP shard has no call ${method}`);
  return fn(ctx.roce, args, ctx);
}

export function shardCounters(r: SoftRoce): ShardCounters {
  const e = r.counters.lastInternalError;
  return {
    dropped: [...r.counters.dropped], events: [...r.counters.events], internalErrors: r.counters.internalErrors,
    lastInternalError: e === null || e === undefined ? null : String((e as Error).message ?? e),
    ...r.packetCounts,
  };
}
