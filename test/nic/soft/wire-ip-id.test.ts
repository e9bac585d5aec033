// SoftWire's receive path checks the ICRC with the IPv4 id unknown: real Linux rxe traffic (whose
// ids count) is accepted, corrupted packets are not, and vrdma still seals under id 0.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceMemory } from '../../../src/memory/index.js';
import type { Link } from '../../../src/nic/link.js';
import { RoceError, RoceErrorCode } from '../../../src/nic/roce/errors.js';
import { parseFrame } from '../../../src/nic/roce/frame.js';
import { ipv4Text, solveIcrcIpId } from '../../../src/nic/roce/icrc.js';
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
  }
});
