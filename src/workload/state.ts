// The workload's whole state as plain data, and its blob: what a migration carries from the
// source host to the destination (the application's part of the "vCPU state"). The blob is
// "VWL" + a version byte, then UTF-8 JSON; `fromState` validates every field before anything
// is built from it, as any snapshot from another host is untrusted.
import { type WorkloadConfig, checkConfig } from './config.js';
import { WorkloadError, WorkloadErrorCode } from './errors.js';

export const STATE_VERSION = 1;
const MAGIC = [0x56, 0x57, 0x4c]; // "VWL"
/** Violations kept in detail; the rest are only counted. */
export const MAX_VIOLATIONS_KEPT = 32;

export interface WorkloadViolation {
  qp: number;
  what: string;
}

export interface PeerArea {
  /** GPA of the peer's workload area. */
  areaGpa: number;
  rkey: number;
}

export interface QpProgress {
  qpn: number;
  sendPosted: number;
  sendCompleted: number;
  recvPosted: number;
  recvCompleted: number;
  /** Payload bytes of this side's completed operations (WRITE, SEND, READ: a message; fetch-add: 8). */
  bytesCompleted: number;
  /** Completions polled, by CqeStatus number. */
  byStatus: Record<string, number>;
}

export interface WorkloadState {
  version: number;
  config: WorkloadConfig;
  /** 0 or 1: which end of the connections this is (payloads differ per side). */
  side: number;
  areaGpa: number;
  lkey: number;
  cqn: number;
  peer: PeerArea | null;
  qps: QpProgress[];
  violations: WorkloadViolation[];
  violationCount: number;
}

export function encodeState(s: WorkloadState): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(s));
  const out = new Uint8Array(4 + json.length);
  out.set(MAGIC, 0);
  out[3] = STATE_VERSION;
  out.set(json, 4);
  return out;
}

const bad = (why: string) => new WorkloadError(WorkloadErrorCode.BadState, why);

export function decodeState(blob: Uint8Array): WorkloadState {
  if (blob.length < 4 || MAGIC.some((b, i) => blob[i] !== b)) throw bad('not a workload state blob');
  if (blob[3] !== STATE_VERSION) throw bad(`state version ${blob[3]}, this build reads ${STATE_VERSION}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(blob.subarray(4)));
  } catch (err) {
    throw bad(`unreadable state: ${(err as Error).message}`);
  }
  return fromState(parsed);
}

function isInt(v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

function field(o: Record<string, unknown>, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[name];
  if (!isInt(v, min, max)) throw bad(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`${what} must be an object`);
  return v as Record<string, unknown>;
}

/** Validate untrusted plain data as a WorkloadState (a copy; the input is not kept). */
export function fromState(input: unknown): WorkloadState {
  const o = record(input, 'state');
  if (o.version !== STATE_VERSION) throw bad(`state version ${String(o.version)}, this build reads ${STATE_VERSION}`);
  const c = record(o.config, 'config');
  let config: WorkloadConfig;
  try {
    config = checkConfig({
      qps: c.qps as number, messageBytes: c.messageBytes as number, slots: c.slots as number, window: c.window as number,
      recvDepth: c.recvDepth as number, seed: c.seed as number,
    });
  } catch (err) {
    throw bad(`config: ${(err as Error).message}`);
  }
  const side = field(o, 'side', 0, 1);
  const areaGpa = field(o, 'areaGpa');
  const lkey = field(o, 'lkey', 0, 0xffffffff);
  const cqn = field(o, 'cqn', 0, 0xffffffff);
  let peer: PeerArea | null = null;
  if (o.peer !== null) {
    const p = record(o.peer, 'peer');
    peer = { areaGpa: field(p, 'areaGpa'), rkey: field(p, 'rkey', 0, 0xffffffff) };
  }
  if (!Array.isArray(o.qps) || o.qps.length !== config.qps) throw bad(`qps must list ${config.qps} QPs`);
  const qps = o.qps.map((raw: unknown, q: number): QpProgress => {
    const p = record(raw, `qps[${q}]`);
    const sendCompleted = field(p, 'sendCompleted');
    const sendPosted = field(p, 'sendPosted', sendCompleted, sendCompleted + config.window);
    const recvCompleted = field(p, 'recvCompleted');
    const recvPosted = field(p, 'recvPosted', recvCompleted, recvCompleted + config.recvDepth);
    const byStatus: Record<string, number> = {};
    for (const [k, v] of Object.entries(record(p.byStatus, `qps[${q}].byStatus`))) {
      if (!/^\d{1,3}$/.test(k) || !isInt(v)) throw bad(`qps[${q}].byStatus has a bad entry ${k}`);
      byStatus[k] = v;
    }
    return { qpn: field(p, 'qpn', 1, 0xffffff), sendPosted, sendCompleted, recvPosted, recvCompleted, bytesCompleted: field(p, 'bytesCompleted'), byStatus };
  });
  if (new Set(qps.map((p) => p.qpn)).size !== qps.length) throw bad('two QPs share a QPN');
  if (!Array.isArray(o.violations) || o.violations.length > MAX_VIOLATIONS_KEPT) throw bad('violations must be a short list');
  const violations = o.violations.map((raw: unknown, i: number): WorkloadViolation => {
    const v = record(raw, `violations[${i}]`);
    if (typeof v.what !== 'string') throw bad(`violations[${i}].what must be a string`);
    return { qp: field(v, 'qp', 0, config.qps - 1), what: v.what.slice(0, 500) };
  });
  const violationCount = field(o, 'violationCount', violations.length);
  return { version: STATE_VERSION, config, side, areaGpa, lkey, cqn, peer, qps, violations, violationCount };
}
