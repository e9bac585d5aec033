// What a host agent hands to the destination with a migrating VM, beside RAM, device and guest
// driver state (src/migration carries those): the application's state (the workload's blob, what
// the vCPU held) and the agent's own bookkeeping of the VM — its name, the handles the workload
// runs on, which peer QP each local QP talks to, and its traffic counters so the destination's
// counters continue where the source's stopped. It travels as the coordinator's application
// state blob; the destination validates it before it adopts anything.
import { deserialize, serialize } from 'node:v8';
import type { QpTraffic } from '../net/observed-link.js';

const CARRY_KIND = 'vrdma-agent-vm';
const CARRY_VERSION = 1;

export interface QpBinding {
  qpn: number;
  peerIp: string;
  peerQpn: number;
}

export interface AgentCarry {
  name: string;
  pd: number;
  lkey: number;
  rkey: number;
  cqn: number;
  qpns: number[];
  bindings: QpBinding[];
  /** Whether the VM's loss switch was on (the destination host applies its own loss options). */
  lossEnabled: boolean;
  traffic: [number, QpTraffic][];
  highestPsns: [number, number][];
  dirtyPages: number;
  /** The workload's state (Workload.pause()). */
  workload: Uint8Array;
}

export class CarryError extends Error {
  override readonly name = 'CarryError';
}

export function encodeCarry(c: AgentCarry): Uint8Array {
  return new Uint8Array(serialize({ kind: CARRY_KIND, version: CARRY_VERSION, ...c }));
}

const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
const TRAFFIC_KEYS: (keyof QpTraffic)[] = ['packetsSent', 'bytesSent', 'packetsReceived', 'bytesReceived', 'retransmitted', 'rnrNaksSent', 'rnrNaksReceived'];

/** The carried state, or CarryError naming the first thing wrong with it. */
export function decodeCarry(bytes: Uint8Array): AgentCarry {
  let v: Record<string, unknown>;
  try {
    v = deserialize(bytes) as Record<string, unknown>;
  } catch (err) {
    throw new CarryError(`not an agent carry: ${(err as Error).message}`);
  }
  const fail = (what: string): never => {
    throw new CarryError(`agent carry: ${what}`);
  };
  if (typeof v !== 'object' || v === null || v.kind !== CARRY_KIND) fail('wrong kind');
  if (v.version !== CARRY_VERSION) fail(`version ${String(v.version)}, this host reads ${CARRY_VERSION}`);
  if (typeof v.name !== 'string' || v.name.length === 0) fail('no VM name');
  for (const k of ['pd', 'lkey', 'rkey', 'cqn', 'dirtyPages'] as const) if (!isUint(v[k])) fail(`bad ${k}`);
  if (!Array.isArray(v.qpns) || !v.qpns.every(isUint)) fail('bad qpns');
  const qpns = v.qpns as number[];
  if (!Array.isArray(v.bindings) || !v.bindings.every((b: QpBinding) => isUint(b?.qpn) && isUint(b.peerQpn) && typeof b.peerIp === 'string')) fail('bad bindings');
  if (typeof v.lossEnabled !== 'boolean') fail('bad lossEnabled');
  const pairs = (x: unknown) => Array.isArray(x) && x.every((p) => Array.isArray(p) && p.length === 2 && isUint(p[0]));
  if (!pairs(v.traffic) || !(v.traffic as [number, QpTraffic][]).every(([, t]) => TRAFFIC_KEYS.every((k) => typeof t?.[k] === 'number' && t[k] >= 0))) fail('bad traffic');
  if (!pairs(v.highestPsns) || !(v.highestPsns as [number, number][]).every(([, p]) => isUint(p))) fail('bad highestPsns');
  if (!(v.workload instanceof Uint8Array)) fail('no workload state');
  return {
    name: v.name as string, pd: v.pd as number, lkey: v.lkey as number, rkey: v.rkey as number, cqn: v.cqn as number, qpns,
    bindings: v.bindings as QpBinding[], lossEnabled: v.lossEnabled as boolean, traffic: v.traffic as [number, QpTraffic][],
    highestPsns: v.highestPsns as [number, number][], dirtyPages: v.dirtyPages as number, workload: v.workload as Uint8Array,
  };
}
