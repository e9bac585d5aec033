// What SoftRoce puts on the wire: every packet's ICRC under the documented IP/UDP context, PSNs
// consecutive from the QP's sq_psn, ACK requests at message ends and every quarter window, and
// coalesced ACKs; plus the IBTA timer tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Link, PacketHandler } from '../../../src/nic/link.js';
import { AethType, aethTypeOf } from '../../../src/nic/roce/headers.js';
import * as H from '../../../src/nic/roce/headers.js';
import { IP_FLAG_DF, ROCE_UDP_PORT, TsIcrc, ipv4 } from '../../../src/nic/roce/icrc.js';
import { OpFlag, Opcode } from '../../../src/nic/roce/opcodes.js';
import { RocePacket, parsePacket } from '../../../src/nic/roce/packet.js';
import { psnAdd } from '../../../src/nic/roce/psn.js';
import { RNR_TIMER_US, localAckTimeoutUs, rnrTimerUs } from '../../../src/nic/roce/timers.js';
import { PathMtu, WrOpcode } from '../../../src/nic/types.js';
import { BUF_IOVA, KiB, assertOk, closeAll, completions, connectRc, pair, settle } from './fixtures.js';

class Sniffer implements Link {
  readonly sent: Uint8Array[] = [];
  constructor(private readonly inner: Link) {}
  get localIp(): string {
    return this.inner.localIp;
  }
  get localPort(): number {
    return this.inner.localPort;
  }
  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    this.sent.push(packet.slice());
    this.inner.send(packet, dstIp, dstPort);
  }
  onPacket(handler: PacketHandler): void {
    this.inner.onPacket(handler);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function parseAll(packets: Uint8Array[], srcIp: string, dstIp: string): RocePacket[] {
  const ctx = { srcIp: ipv4(srcIp), dstIp: ipv4(dstIp), ipId: 0, ipFlags: IP_FLAG_DF, srcPort: ROCE_UDP_PORT, dstPort: ROCE_UDP_PORT };
  return packets.map((p) => {
    const pkt = parsePacket(p, 0, p.length, { ctx, engine: new TsIcrc() });
    if (!(pkt instanceof RocePacket)) assert.fail(`a packet failed its checks: ${pkt.message}`);
    return pkt;
  });
}

describe('SoftRoce on the wire', () => {
  it('seals every packet, numbers PSNs in order, asks for ACKs sparingly, and coalesces ACKs', async () => {
    const { a, b } = pair({ wrap: (l) => new Sniffer(l) });
    // A long local ACK timeout (67 ms), so a slow first run does not add retransmissions.
    const [qa, qb] = connectRc(a, b, { mtu: PathMtu.Mtu1024, sqPsn: 0xffffe0, timeout: 14 });
    const len = 100 * KiB + 3;
    b.dev.postRecv(qb, [{ wrId: 1n, sgList: [{ addr: BUF_IOVA, length: len, lkey: b.mr.lkey }] }]);
    a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.Send, flags: 0, sgList: [{ addr: BUF_IOVA, length: len, lkey: a.mr.lkey }] }]);
    assertOk(await completions(a, 1));
    await settle(5);
    const all = parseAll((a.link as Sniffer).sent, a.ip, b.ip);
    const acks = parseAll((b.link as Sniffer).sent, b.ip, a.ip);
    // Should the timer still fire, what follows the first pass may only be the same packets again.
    const requests = all.slice(0, 101);
    const firstPass = new Set(requests.map((p) => H.bthPsn(p)));
    for (const p of all.slice(101)) assert.ok(firstPass.has(H.bthPsn(p)), 'a retransmission resends PSNs already used');
    requests.forEach((p, i) => {
      assert.equal(H.bthPsn(p), psnAdd(0xffffe0, i), 'consecutive PSNs across the wrap');
      assert.equal(H.bthDqpn(p), qb);
      assert.equal(H.bthPkey(p), 0xffff);
      assert.equal(p.opcode, i === 0 ? Opcode.RcSendFirst : i === 100 ? Opcode.RcSendLast : Opcode.RcSendMiddle);
      assert.equal(p.payloadBytes, i === 100 ? 3 : 1024);
    });
    const asked = requests.filter((p) => H.bthAckReq(p));
    assert.ok(H.bthAckReq(requests[100]), 'the last packet asks for an ACK');
    assert.ok(asked.length >= 3 && asked.length <= 101 / 16, `ACK requests every quarter window: ${asked.length}`);
    assert.ok(acks.length >= 1 && acks.length <= asked.length, `${acks.length} ACKs for ${asked.length} requests`);
    for (const ack of acks) {
      assert.equal(ack.opcode, Opcode.RcAck);
      assert.equal(aethTypeOf(H.aethSyndromeOf(ack)), AethType.Ack);
    }
    const last = acks[acks.length - 1];
    assert.equal(H.bthPsn(last), H.bthPsn(requests[100]));
    assert.equal(H.aethMsn(last), 1, 'one message completed');
    assert.equal(requests.filter((p) => (p.info.flags & OpFlag.Request) === 0).length, 0);
    await closeAll(a, b);
  });

  it('uses the IBTA timer tables', () => {
    assert.equal(localAckTimeoutUs(0), null, 'timeout 0 waits forever');
    assert.equal(localAckTimeoutUs(14), 4.096 * 16384);
    assert.equal(RNR_TIMER_US.length, 32);
    assert.equal(rnrTimerUs(0), 655360);
    assert.equal(rnrTimerUs(1), 10);
    assert.equal(rnrTimerUs(14), 1280);
    assert.equal(rnrTimerUs(31), 491520);
    for (let i = 2; i < 32; i++) assert.ok(RNR_TIMER_US[i] > RNR_TIMER_US[i - 1]);
  });
});
