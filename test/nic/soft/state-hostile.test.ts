// Hostile provider states: records whose contents are wrong in one way each, refused with the code
// that names the problem; random damage behind a valid checksum, refused with StateError or
// harmless; and after every refusal the provider is exactly as empty as before, and takes the
// good state next.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LoopbackHub } from '../../../src/net/loopback.js';
import { QpState } from '../../../src/nic/qp-state.js';
import { WqeState } from '../../../src/nic/roce/wqe.js';
import { PathMtu, type WcStatus, type WrOpcode } from '../../../src/nic/types.js';
import type { WorkCompletion } from '../../../src/nic/verbs.js';
import { encodeSoftRoceState, decodeSoftRoceState } from '../../../src/nic/soft/state/codec.js';
import type { SoftRoceState } from '../../../src/nic/soft/state/types.js';
import { StateError, StateErrorCode as C, stateChecksum } from '../../../src/state/index.js';
import { bare, copyRam, memory, rich } from './state-fixtures.js';

const A_IP = '127.0.23.11';
const B_IP = '127.0.23.12';

type Mutation = [name: string, expected: C, apply: (s: SoftRoceState) => void];

const WC: WorkCompletion = { wrId: 1n, status: 0, opcode: 0, vendorErr: 0, byteLen: 0, immData: 0, qpNum: 0x4242, srcQp: 0, wcFlags: 0, pkeyIndex: 0, slid: 0, sl: 0, dlidPathBits: 0 };
const rc = (s: SoftRoceState) => s.qps.find((q) => q.qpn === 0x4242)!;

const MUTATIONS: Mutation[] = [
  ['QP in a PD that is not there', C.Inconsistent, (s) => (rc(s).pd = 999)],
  ['QP completing into no CQ', C.Inconsistent, (s) => (rc(s).sendCq = 999)],
  ['QP on no SRQ', C.Inconsistent, (s) => (s.qps[1].srq = 77)],
  ['two QPs with one QPN', C.Inconsistent, (s) => (s.qps[1].qpn = s.qps[0].qpn)],
  ['QPN of a special QP', C.Incompatible, (s) => (rc(s).qpn = 1)],
  ['send queue deeper than the device', C.Incompatible, (s) => (rc(s).cap.maxSendWr = 1_000_000)],
  ['more WQEs than the queue holds', C.Inconsistent, (s) => (rc(s).cap.maxSendWr = 1)],
  ['max_rd_atomic above the device', C.Incompatible, (s) => (rc(s).attrs.maxRdAtomic = 200)],
  ['path MTU above the port', C.Incompatible, (s) => (rc(s).attrs.pathMtu = PathMtu.Mtu4096)],
  ['path MTU unknown', C.BadRecord, (s) => (rc(s).attrs.pathMtu = 6 as PathMtu)],
  ['address vector from no GID', C.Inconsistent, (s) => (rc(s).attrs.ahAttr.sgidIndex = 5)],
  ['address vector from a foreign GID', C.Inconsistent, (s) => (rc(s).attrs.ahAttr.sgidIndex = 2)],
  ['requester past the send queue', C.BadRecord, (s) => (rc(s).req.next = rc(s).sq.length + 1)],
  ['requester PSN above 24 bits', C.BadRecord, (s) => (rc(s).req.psn = 1 << 24)],
  ['a started WQE marked not started', C.Inconsistent, (s) => (rc(s).sq[0].state = WqeState.Posted)],
  ['WRITE in progress into no MR', C.Inconsistent, (s) => (rc(s).resp.write = { rkey: 0xdead01, va: 0n, remaining: 1, lenBytes: 2 })],
  ['more responder resources than allowed', C.Inconsistent, (s) => rc(s).resp.resources.push(...Array.from({ length: 5 }, () => ({ atomic: true, psn: 1, psnCount: 1, rkey: 1, va: 8n, lenBytes: 8, orig: 0n })))],
  ['a held packet that is no request', C.BadRecord, (s) => (rc(s).resp.held = { packet: Uint8Array.of(0x11, ...new Array<number>(19).fill(0)), fromIp: B_IP })],
  ['SUSPENDED without its suspension', C.BadRecord, (s) => (rc(s).state = QpState.Suspended)],
  ['RESET with queued work', C.Inconsistent, (s) => (rc(s).state = QpState.Reset)],
  ['send WQE with an unknown opcode', C.BadRecord, (s) => (rc(s).sq[0] = { ...rc(s).sq[0], opcode: 99 as WrOpcode })],
  ['UD opcode mix-up', C.Inconsistent, (s) => (s.qps.find((q) => q.type === 4)!.sq.push({ ...rc(s).sq[1] }))],
  ['MR in no PD', C.Inconsistent, (s) => (s.mrs[0].pd = 999)],
  ['MR key tag not the allocator\'s', C.Inconsistent, (s) => (s.mrs[0].key ^= 1)],
  ['MR page outside guest RAM', C.Incompatible, (s) => { if (s.mrs[0].table.kind === 'physical') (s.mrs[0].table.pages as number[])[3] = 0x7fff_0000_0000; }],
  ['MR page misaligned', C.BadRecord, (s) => { if (s.mrs[0].table.kind === 'physical') (s.mrs[0].table.pages as number[])[0] += 8; }],
  ['MR page count wrong', C.Inconsistent, (s) => { if (s.mrs[0].table.kind === 'physical') (s.mrs[0].table.pages as number[]).pop(); }],
  ['MR access bits unknown', C.BadRecord, (s) => (s.mrs[0].table = { ...s.mrs[0].table, access: 0x100000 })],
  ['MR on demand', C.Incompatible, (s) => (s.mrs[0].table = { ...s.mrs[0].table, onDemand: true })],
  ['CQ of depth 0', C.Incompatible, (s) => (s.cqs[0].depth = 0)],
  ['CQ with more completions than entries', C.BadRecord, (s) => { s.cqs[1].depth = 1; s.cqs[1].entries.push(WC, WC); }],
  ['completion with an unknown status', C.BadRecord, (s) => s.cqs[0].entries.push({ ...WC, status: 99 as WcStatus })],
  ['completion from a QPN above 24 bits', C.BadRecord, (s) => s.cqs[0].entries.push({ ...WC, qpNum: 1 << 24 })],
  ['GID 0 not the provider\'s address', C.Inconsistent, (s) => (s.gids[0].ip = '10.0.0.1')],
  ['a GID index twice', C.Inconsistent, (s) => s.gids.push({ index: 2, ip: '10.0.0.3' })],
  ['GID index past the table', C.Incompatible, (s) => s.gids.push({ index: 99, ip: '10.0.0.3' })],
  ['SRQ limit above its size', C.Incompatible, (s) => (s.srqs[0].limit = 99)],
  ['AH in no PD', C.Inconsistent, (s) => (s.ahs[0].pd = 999)],
  ['a PD twice', C.Inconsistent, (s) => s.pds.push(s.pds[0])],
  ['QPN cursor among the special QPs', C.Incompatible, (s) => (s.allocators.qp = 3)],
  ['provider on another address', C.Incompatible, (s) => (s.localIp = '127.0.23.99')],
];

async function fixture() {
  const a = rich(new LoopbackHub(), A_IP, { ip: B_IP, qpn: 0x99, rkey: 0x1234 });
  // Let the requester send everything (to a peer that is not there): sent, unacknowledged WQEs.
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  const good = a.dev.saveState();
  a.dev.close();
  return { a, good, state: decodeSoftRoceState(good) };
}

describe('SoftRoce hostile states', async () => {
  const { a, good, state } = await fixture();
  assert.ok(rc(state).req.next > 0, 'the fixture has sent WQEs');
  const dest = bare(new LoopbackHub(), A_IP, copyRam(a.dm));
  const empty = dest.dev.saveState();

  const bad = (apply: (s: SoftRoceState) => void): Uint8Array => {
    const s = structuredClone(state);
    apply(s);
    return encodeSoftRoceState(s);
  };

  for (const [name, expected, apply] of MUTATIONS) {
    it(`refuses ${name} with ${expected}, and keeps nothing`, () => {
      const d = bare(new LoopbackHub(), A_IP, dest.dm);
      try {
        assert.throws(() => d.dev.restoreState(bad(apply)), (e) => (e instanceof StateError && e.code === expected ? true : assert.fail(`got ${String(e)}`)));
        assert.deepEqual(d.dev.saveState(), empty);
      } finally {
        d.dev.close();
      }
    });
  }

  it('keeps one provider empty through a series of refusals', () => {
    for (const [, expected, apply] of MUTATIONS) {
      assert.throws(() => dest.dev.restoreState(bad(apply)), (e) => e instanceof StateError && e.code === expected);
      assert.deepEqual(dest.dev.saveState(), empty);
    }
  });

  it('refuses or harmlessly takes random damage behind a valid checksum, never half-building', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (hits) => {
        const buf = good.slice();
        for (const [at, x] of hits) buf[32 + (at % (buf.length - 32))] ^= x;
        new DataView(buf.buffer).setUint32(28, stateChecksum(buf), true);
        // A memory per run: a provider that took a (harmlessly damaged) state keeps arena blocks.
        const d = bare(new LoopbackHub(), A_IP, memory());
        const before = d.dev.saveState();
        try {
          d.dev.restoreState(buf);
        } catch (err) {
          if (!(err instanceof StateError)) throw err;
          assert.deepEqual(d.dev.saveState(), before);
          return;
        } finally {
          d.dev.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('takes the good state after all those refusals', () => {
    dest.dev.restoreState(good);
    assert.equal(dest.dev.queryQp(0x4242).qpState, QpState.Suspended);
    dest.dev.close();
  });
});
