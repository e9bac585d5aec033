// SoftWire's receive path checks the ICRC with the IPv4 id unknown: real Linux rxe traffic (whose
// ids count) is accepted, corrupted packets are not, and vrdma still seals under id 0. The wire
// fills one context per direction in place: packets to and from alternating peers each get their
// own addresses and ports, and a malformed source is refused every time it comes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceMemory } from '../../../src/memory/index.js';
import type { Link } from '../../../src/nic/link.js';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import { parseFrame } from '../../../src/nic/roce/frame.js';
import { IP_FLAG_DF, type IcrcContext, ipv4, ipv4Text, solveIcrcIpId } from '../../../src/nic/roce/icrc.js';
import { readPcap } from '../../../src/nic/roce/pcap.js';
import { Opcode } from '../../../src/nic/roce/opcodes.js';
import { SoftWire } from '../../../src/nic/soft/wire.js';
import { fixtureBytes } from '../roce/fixtures.js';

function sink(ip: string, sent: Uint8Array[]): Link {
  return {
    localIp: ip, localPort: 4791,
    send: (p: Uint8Array) => void sent.push(p.slice()),
    onPacket: () => {},
    close: () => Promise.resolve(),
  };
}

describe('SoftWire with senders whose IPv4 id it cannot see', () => {
  for (const engine of ['ts', 'wasm'] as const) {
    it(`accepts every frame Linux rxe sent, rejects them with a bit flipped, and seals under id 0 [${engine}]`, () => {
      const records = readPcap(fixtureBytes('linux-rxe-send-4099.pcap'));
      const dm = DeviceMemory.create({ ramBytes: 1 << 20, arenaBytes: 1 << 20 });
      for (const r of records) {
        const f = parseFrame(r.data);
        assert.ok(!(f instanceof RoceError));
        assert.notEqual(f.ctx.ipId, 0);
        const sent: Uint8Array[] = [];
        const wire = new SoftWire(dm, sink(ipv4Text(f.ctx.dstIp), sent), engine);
        const pkt = r.data.slice(f.bthOff, f.bthOff + f.bthLen);
        const from = { ip: ipv4Text(f.ctx.srcIp), port: f.ctx.srcPort };
        assert.ok(!(wire.parse(pkt, from) instanceof RoceError));
        pkt[pkt.length >> 1] ^= 0x10;
        const bad = wire.parse(pkt, from);
        assert.ok(bad instanceof RoceError && bad.code === RoceErrorCode.BadIcrc);
        wire.transmit(from.ip, { opcode: Opcode.RcAck, dqpn: 1, psn: 2, aeth: { syndrome: 0x1f, msn: 3 } }, 0, null);
        const back = { ...f.ctx, srcIp: f.ctx.dstIp, dstIp: f.ctx.srcIp, srcPort: 4791, ipId: 0x7777 };
        assert.equal(solveIcrcIpId(wire.icrc, back, sent[0], 0, sent[0].length), 0);
        wire.dispose();
      }
    });

    it(`seals and checks each packet under its own peer's address and port, peers alternating [${engine}]`, () => {
      const dm = DeviceMemory.create({ ramBytes: 1 << 20, arenaBytes: 1 << 20 });
      const sent: Uint8Array[] = [];
      const wire = new SoftWire(dm, sink('10.0.0.1', sent), engine);
      const peers = [{ ip: '10.0.0.2', port: 50001 }, { ip: '10.0.0.3', port: 50002 }];
      for (let i = 0; i < 6; i++) wire.transmit(peers[i % 2].ip, { opcode: Opcode.RcAck, dqpn: 1, psn: i, aeth: { syndrome: 0x1f, msn: i } }, 0, null);
      for (let i = 0; i < 6; i++) {
        const to: IcrcContext = { srcIp: ipv4('10.0.0.1'), dstIp: ipv4(peers[i % 2].ip), ipId: 0, ipFlags: IP_FLAG_DF, srcPort: 4791, dstPort: 4791 };
        const wrong: IcrcContext = { ...to, dstIp: ipv4(peers[(i + 1) % 2].ip) };
        assert.equal(solveIcrcIpId(wire.icrc, to, sent[i], 0, sent[i].length), 0, `packet ${i} sealed to ${peers[i % 2].ip}`);
        assert.equal(solveIcrcIpId(wire.icrc, wrong, sent[i], 0, sent[i].length), -1);
      }
      // Each sealed packet read back as if it came from its peer, to a wire holding the peer's address.
      const back = peers.map((p) => new SoftWire(dm, sink(p.ip, []), engine));
      for (let i = 0; i < 6; i++) {
        const from = { ip: '10.0.0.1', port: 4791 };
        assert.ok(!(back[i % 2].parse(sent[i], from) instanceof RoceError), `packet ${i}`);
        assert.ok(back[i % 2].parse(sent[i], { ip: '10.0.0.1', port: 4792 }) instanceof RoceError, 'another source port is another ICRC');
        assert.ok(back[(i + 1) % 2].parse(sent[i], from) instanceof RoceError, 'another destination is another ICRC');
        for (let j = 0; j < 2; j++) {
          const bad = back[i % 2].parse(sent[i], { ip: '10.0.0.256', port: 4791 });
          assert.ok(bad instanceof RoceError && bad.code === RoceErrorCode.BadFrame, 'a malformed source, again and again');
        }
      }
      for (const w of [wire, ...back]) w.dispose();
    });
  }
});
