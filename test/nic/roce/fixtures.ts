// Loading of the RoCE v2 vector files in test/fixtures/vectors (see the README there).
import { readFileSync } from 'node:fs';
import { OpFlag, opcodeInfo } from '../../../src/nic/roce/opcodes.js';
import type { BuildFields } from '../../../src/nic/roce/packet.js';

const DIR = new URL('../../../../test/fixtures/vectors/', import.meta.url);

export function fixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(name, DIR)));
}

export interface VectorFields {
  opcode: number;
  dqpn: number;
  psn: number;
  ackreq?: number;
  solicited?: number;
  padcount?: number;
  reth?: { va: bigint; rkey: number; dmalen: number };
  aeth?: { syndrome: number; msn: number };
  atomiceth?: { va: bigint; rkey: number; swap_add: bigint; compare: bigint };
  atomicacketh?: { orig: bigint };
  immdt?: number;
  deth?: { qkey: number; srcqp: number };
  payload_hex?: string;
}

export interface Vector {
  name: string;
  frame: Uint8Array;
  icrcOk: boolean;
  fields: VectorFields | null;
}

const U64_KEYS = new Set(['va', 'swap_add', 'compare', 'orig']);

/** The vectors of roce-v2.json; 64-bit fields become bigint without passing through a double. */
export function loadVectors(): Vector[] {
  const text = readFileSync(new URL('roce-v2.json', DIR), 'utf8');
  // Quote long integers so JSON.parse keeps every digit, then turn the 64-bit fields to bigint.
  const quoted = text.replace(/("(?:va|swap_add|compare|orig)":\s*)(\d+)/g, '$1"$2"');
  const json = JSON.parse(quoted, (key, value) => (U64_KEYS.has(key) && typeof value === 'string' ? BigInt(value) : value)) as {
    vectors: { name: string; frame_hex: string; icrc_ok: boolean; fields: VectorFields | null }[];
  };
  return json.vectors.map((v) => ({ name: v.name, frame: Uint8Array.from(Buffer.from(v.frame_hex, 'hex')), icrcOk: v.icrc_ok, fields: v.fields }));
}

/** AckReq of a vector: listed for some; the generator sets it on every RC request. */
export function ackReqOf(v: VectorFields): boolean {
  if (v.ackreq !== undefined) return v.ackreq === 1;
  const info = opcodeInfo(v.opcode)!;
  return info.transport === 'RC' && (info.flags & OpFlag.Request) !== 0;
}

/**
 * The build fields a vector lists. The generator also sets MigReq (scapy's BTH default), P_Key
 * 0xFFFF and AckReq on RC requests without always listing them.
 */
export function buildFieldsOf(v: VectorFields): BuildFields {
  const f: BuildFields = { opcode: v.opcode, dqpn: v.dqpn, psn: v.psn, ackReq: ackReqOf(v), solicited: v.solicited === 1, migReq: true, pkey: 0xffff };
  if (v.reth) f.reth = { va: v.reth.va, rkey: v.reth.rkey, dmaLen: v.reth.dmalen };
  if (v.aeth) f.aeth = { syndrome: v.aeth.syndrome, msn: v.aeth.msn };
  if (v.atomiceth) f.atomicEth = { va: v.atomiceth.va, rkey: v.atomiceth.rkey, swapAdd: v.atomiceth.swap_add, compare: v.atomiceth.compare };
  if (v.atomicacketh) f.atomicAckOrig = v.atomicacketh.orig;
  if (v.immdt !== undefined) f.immDt = v.immdt;
  if (v.deth) f.deth = { qkey: v.deth.qkey, srcQp: v.deth.srcqp };
  return f;
}
