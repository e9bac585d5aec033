// Hostile packets injected into a live connection, from the peer's own (forged) address and from
// elsewhere: random bytes, truncations, flipped bits, unknown QPNs, foreign opcodes, requests and
// responses with PSNs far outside the window. Each is dropped or NAKed as IBTA says; the
// connection carries on and every byte of the real traffic arrives; nothing throws.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { AethType, AETH_CREDITS_INVALID, aethSyndrome } from '../../../src/nic/roce/headers.js';
import { IP_FLAG_DF, ROCE_UDP_PORT, TsIcrc, ipv4 } from '../../../src/nic/roce/icrc.js';
import { Opcode } from '../../../src/nic/roce/opcodes.js';
import { type BuildFields, buildPacket } from '../../../src/nic/roce/packet.js';
import { PSN_MASK } from '../../../src/nic/roce/psn.js';
import { seededRandom } from '../../../src/net/lossy.js';
import { PathMtu, WrOpcode } from '../../../src/nic/types.js';
import type { SendWr } from '../../../src/nic/verbs.js';
import { BUF_IOVA, KiB, MiB, assertOk, bytesAt, closeAll, completions, connectRc, fill, pair, pattern } from './fixtures.js';

const icrc = new TsIcrc();

function forge(f: BuildFields, payload: Uint8Array, srcIp: string, dstIp: string): Uint8Array {
  const out = new Uint8Array(4096 + 128);
  const ctx = { srcIp: ipv4(srcIp), dstIp: ipv4(dstIp), ipId: 0, ipFlags: IP_FLAG_DF, srcPort: ROCE_UDP_PORT, dstPort: ROCE_UDP_PORT };
  const n = buildPacket(f, payload, out, 0, { ctx, engine: icrc });
  return out.slice(0, n);
}

describe('hostile packets on a live connection', () => {
  it('are dropped or NAKed and the connection keeps working', async () => {
    const { hub, a, b } = pair();
    const [qa, qb] = connectRc(a, b, { mtu: PathMtu.Mtu1024, timeout: 9, sqPsn: 0x100 });
    const rnd = seededRandom(99);
    const from = (ip: string) => ({ ip, port: ROCE_UDP_PORT });
    const ack = { syndrome: aethSyndrome(AethType.Ack, AETH_CREDITS_INVALID), msn: 0 };
    // Packets at PSNs that are valid-looking but far from anything outstanding.
    const far = (n: number) => (0x100 + 0x400000 + n) & PSN_MASK;
    const hostile: [Uint8Array, string, string][] = [];
    for (let i = 0; i < 40; i++) {
      const random = new Uint8Array(Math.floor(rnd() * 300));
      for (let k = 0; k < random.length; k++) random[k] = Math.floor(rnd() * 256);
      hostile.push([random, a.ip, b.ip], [random, b.ip, a.ip]);
      const good = forge({ opcode: Opcode.RcSendOnly, dqpn: qb, psn: far(i), ackReq: true }, pattern(64, i), a.ip, b.ip);
      hostile.push([good.slice(0, Math.floor(rnd() * good.length)), a.ip, b.ip]); // truncated
      const flipped = good.slice();
      flipped[Math.floor(rnd() * flipped.length)] ^= 1 << Math.floor(rnd() * 8);
      hostile.push([flipped, a.ip, b.ip]); // bad ICRC
      hostile.push([good, a.ip, b.ip]); // PSN far ahead: one NAK, then silence
      hostile.push([forge({ opcode: Opcode.RcSendOnly, dqpn: 0xabcde, psn: 0x100 }, pattern(8, i), a.ip, b.ip), a.ip, b.ip]); // unknown QPN
      hostile.push([forge({ opcode: Opcode.UdSendOnly, dqpn: qb, psn: 0x100, deth: { qkey: 1, srcQp: qa } }, pattern(8, i), a.ip, b.ip), a.ip, b.ip]); // UD opcode on RC
      hostile.push([forge({ opcode: Opcode.RcWriteOnly, dqpn: qb, psn: 0x100, reth: { va: BigInt(BUF_IOVA + 3.5 * MiB), rkey: b.mr.rkey, dmaLen: 8 } }, pattern(8, 0xee), '127.0.1.99', b.ip), '127.0.1.99', b.ip]); // stranger
      // Responses to the requester, far outside its window.
      hostile.push([forge({ opcode: Opcode.RcAck, dqpn: qa, psn: far(i), aeth: ack }, new Uint8Array(0), b.ip, a.ip), b.ip, a.ip]);
      hostile.push([forge({ opcode: Opcode.RcAck, dqpn: qa, psn: far(i), aeth: { syndrome: aethSyndrome(AethType.Nak, 2), msn: 0 } }, new Uint8Array(0), b.ip, a.ip), b.ip, a.ip]);
      hostile.push([forge({ opcode: Opcode.RcReadResponseOnly, dqpn: qa, psn: far(i), aeth: ack }, pattern(64, 0xdd), b.ip, a.ip), b.ip, a.ip]);
      hostile.push([forge({ opcode: Opcode.RcAtomicAck, dqpn: qa, psn: far(i), aeth: ack, atomicAckOrig: 77n }, new Uint8Array(0), b.ip, a.ip), b.ip, a.ip]);
      // A "duplicate" READ the responder never executed: no saved resource, dropped.
      hostile.push([forge({ opcode: Opcode.RcReadRequest, dqpn: qb, psn: (0x100 - 1000 - i) & PSN_MASK, reth: { va: BigInt(BUF_IOVA), rkey: b.mr.rkey, dmaLen: 64 } }, new Uint8Array(0), a.ip, b.ip), a.ip, b.ip]);
    }

    const wrs: SendWr[] = [];
    for (let i = 0; i < 60; i++) {
      const len = 1 + ((i * 2749) % (20 * KiB));
      fill(a, i * 32 * KiB, pattern(len, i));
      if (i % 2 === 0) {
        b.dev.postRecv(qb, [{ wrId: BigInt(i), sgList: [{ addr: BUF_IOVA + i * 32 * KiB, length: 32 * KiB, lkey: b.mr.lkey }] }]);
        wrs.push({ wrId: BigInt(i), opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA + i * 32 * KiB, length: len, lkey: a.mr.lkey }] });
      } else {
        wrs.push({ wrId: BigInt(i), opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA + i * 32 * KiB, length: len, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + i * 32 * KiB, rkey: b.mr.rkey });
      }
    }
    // Interleave: a few work requests, a few hostile packets, let the network run, repeat.
    let h = 0;
    for (let i = 0; i < wrs.length; i += 5) {
      a.dev.postSend(qa, wrs.slice(i, i + 5));
      for (let k = 0; k < hostile.length / 12 && h < hostile.length; k++, h++) hub.inject(hostile[h][0], from(hostile[h][1]), hostile[h][2]);
      await tick();
    }
    while (h < hostile.length) hub.inject(hostile[h][0], from(hostile[h][1]), hostile[h++][2]);

    const wcs = await completions(a, wrs.length);
    assertOk(wcs);
    assertOk(await completions(b, wrs.length / 2));
    for (let i = 0; i < 60; i++) {
      const len = 1 + ((i * 2749) % (20 * KiB));
      assert.ok(Buffer.from(bytesAt(b, i * 32 * KiB, len)).equals(Buffer.from(pattern(len, i))), `work request ${i}`);
    }
    // Nothing the attacker sent was written: the stranger's WRITE left its target untouched.
    assert.deepEqual([...bytesAt(b, 3.5 * MiB, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
    const db = b.dev.counters.dropped;
    const da = a.dev.counters.dropped;
    assert.ok((db.get('BAD_ICRC') ?? 0) > 0 && (db.get('unknown QPN') ?? 0) > 0 && (db.get('opcode for another QP type') ?? 0) > 0);
    assert.ok((db.get('not from the connected peer') ?? 0) > 0 && (db.get('out of sequence') ?? 0) > 0);
    assert.ok((db.get('duplicate with no saved response') ?? 0) > 0);
    assert.ok((da.get('response PSN outside the window') ?? 0) > 0);

    // Still a working connection, both ways.
    fill(b, 3 * MiB, pattern(5000, 1234));
    a.dev.postSend(qa, [{ wrId: 500n, opcode: WrOpcode.RdmaRead, flags: 0, sgList: [{ addr: BUF_IOVA + 3 * MiB, length: 5000, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA + 3 * MiB, rkey: b.mr.rkey }]);
    assertOk(await completions(a, 1));
    assert.ok(Buffer.from(bytesAt(a, 3 * MiB, 5000)).equals(Buffer.from(pattern(5000, 1234))));
    await closeAll(a, b);
  });
});
