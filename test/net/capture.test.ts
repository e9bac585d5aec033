import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runPcapCheck } from '../../src/cli/pcap-check.js';
import { CaptureLink, macOf } from '../../src/net/capture.js';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { UdpLink } from '../../src/net/udp-link.js';
import type { Link } from '../../src/nic/link.js';
import { RoceError } from '../../src/nic/roce/errors.js';
import { parseFrame, socketContext } from '../../src/nic/roce/frame.js';
import { AethType, aethSyndrome } from '../../src/nic/roce/headers.js';
import { IP_FLAG_DF, ipv4, TsIcrc } from '../../src/nic/roce/icrc.js';
import { Opcode } from '../../src/nic/roce/opcodes.js';
import { type BuildFields, buildPacket, packetBytes } from '../../src/nic/roce/packet.js';
import { opcodeInfo } from '../../src/nic/roce/opcodes.js';
import { readPcap } from '../../src/nic/roce/pcap.js';

const HOST = '127.0.3.30';
const VM = '127.0.3.31';
const dir = mkdtempSync(join(tmpdir(), 'vrdma-capture-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const engine = new TsIcrc();

/** A sealed packet as `from` sends it to `to` from port 4791 (vrdma's IcrcContext convention). */
function packet(from: string, to: string, f: BuildFields, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(packetBytes(opcodeInfo(f.opcode)!, payloadBytes));
  const payload = Uint8Array.from({ length: payloadBytes }, (_, i) => (i * 7 + f.psn) & 0xff);
  buildPacket(f, payload, out, 0, { ctx: socketContext(ipv4(from), ipv4(to), 4791), engine });
  return out;
}

const FROM_HOST: [BuildFields, number][] = [
  [{ opcode: Opcode.RcSendOnly, dqpn: 17, psn: 1, ackReq: true }, 13],
  [{ opcode: Opcode.RcWriteOnly, dqpn: 17, psn: 2, ackReq: true, reth: { va: 0x7f0010000000n, rkey: 0x1234, dmaLen: 4096 } }, 4096],
  [{ opcode: Opcode.RcReadRequest, dqpn: 17, psn: 3, ackReq: true, reth: { va: 0x1000n, rkey: 0xabcd, dmaLen: 8192 } }, 0],
  [{ opcode: Opcode.RcFetchAdd, dqpn: 17, psn: 5, ackReq: true, atomicEth: { va: 0x2000n, rkey: 0x55, swapAdd: 0xffff_ffff_ffff_ffffn, compare: 0n } }, 0],
  [{ opcode: Opcode.UdSendOnlyImm, dqpn: 0xffffff, psn: 0xfffffe, deth: { qkey: 0x80010000, srcQp: 1 }, immDt: 0xdeadbeef }, 256],
];
const FROM_VM: [BuildFields, number][] = [
  [{ opcode: Opcode.RcAck, dqpn: 34, psn: 2, aeth: { syndrome: aethSyndrome(AethType.Ack, 0x1f), msn: 2 } }, 0],
  [{ opcode: Opcode.RcAck, dqpn: 34, psn: 3, aeth: { syndrome: aethSyndrome(AethType.RnrNak, 1), msn: 2 } }, 0],
  [{ opcode: Opcode.RcReadResponseOnly, dqpn: 34, psn: 3, aeth: { syndrome: aethSyndrome(AethType.Ack, 0x1f), msn: 3 } }, 1021],
  [{ opcode: Opcode.RcAtomicAck, dqpn: 34, psn: 5, aeth: { syndrome: aethSyndrome(AethType.Ack, 0x1f), msn: 4 }, atomicAckOrig: 42n }, 0],
  [{ opcode: Opcode.RcSendOnlyInv, dqpn: 34, psn: 9, iethRkey: 0x1234 }, 2],
];

function received(link: Link, count: number): Promise<void> {
  let n = 0;
  return new Promise((resolve) => link.onPacket(() => ++n === count && resolve()));
}

describe('CaptureLink', () => {
  it('records an arriving packet under the IPv4 id its ICRC was sealed with (a Linux rxe peer counts ids)', async () => {
    const path = join(dir, 'rxe-ids.pcap');
    const host = await CaptureLink.open(await UdpLink.open({ ip: HOST, port: 0 }), path);
    const vm = await UdpLink.open({ ip: VM, port: 0 });
    const ids = [0x1234, 1, 0xffff];
    const at = received(host, ids.length);
    for (const [i, ipId] of ids.entries()) {
      const out = new Uint8Array(packetBytes(opcodeInfo(Opcode.RcAck)!, 0));
      const ctx = { ...socketContext(ipv4(VM), ipv4(HOST), vm.localPort), ipId, dstPort: host.localPort };
      buildPacket({ opcode: Opcode.RcAck, dqpn: 34, psn: i, aeth: { syndrome: aethSyndrome(AethType.Ack, 0x1f), msn: i } }, new Uint8Array(0), out, 0, { ctx, engine });
      vm.send(out, HOST, host.localPort);
    }
    await at;
    await Promise.all([host.close(), vm.close()]);
    const records = readPcap(new Uint8Array(readFileSync(path)));
    assert.deepEqual(records.map((r) => (r.data[14 + 4] << 8) | r.data[14 + 5]), ids);
  });

  it('records what it sends and receives so that pcap-check decodes every frame with a right ICRC', async () => {
    const path = join(dir, 'round-trip.pcap');
    const host = await CaptureLink.open(await UdpLink.open({ ip: HOST }), path);
    const vm = await UdpLink.open({ ip: VM });
    const atVm = received(vm, FROM_HOST.length);
    const atHost = received(host, FROM_VM.length);
    for (const [f, n] of FROM_HOST) host.send(packet(HOST, VM, f, n), VM);
    await atVm;
    for (const [f, n] of FROM_VM) vm.send(packet(VM, HOST, f, n), HOST);
    await atHost;
    await Promise.all([host.close(), vm.close()]);
    assert.deepEqual(host.counters(), { records: 10, dropped: 0, bytesWritten: readFileSync(path).length, unframed: 0 });

    // The headers Linux puts on a datagram from an unconnected UDP socket.
    const records = readPcap(new Uint8Array(readFileSync(path)));
    assert.equal(records.length, 10);
    for (const [i, r] of records.entries()) {
      const f = parseFrame(r.data);
      assert.ok(!(f instanceof RoceError), String(f));
      const [src, dst] = i < FROM_HOST.length ? [HOST, VM] : [VM, HOST];
      assert.deepEqual(f.ctx, socketContext(ipv4(src), ipv4(dst), 4791));
      assert.equal(f.ctx.ipFlags, IP_FLAG_DF);
      assert.deepEqual([f.ttl, f.tos], [64, 0]);
      assert.deepEqual([...f.srcMac, ...f.dstMac], [...macOf(ipv4(src)), ...macOf(ipv4(dst))]);
      assert.deepEqual([r.data[14 + 26], r.data[14 + 27]], [0, 0], 'UDP checksum 0');
      if (i > 0) assert.ok(r.timeNs >= records[i - 1].timeNs);
    }

    let out = '';
    const status = runPcapCheck(path, { out: (t) => (out += t), err: () => {} });
    assert.equal(status, 0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const sent = [...FROM_HOST, ...FROM_VM];
    assert.deepEqual(
      lines.map((l) => [l.frame, l.opcode, l.psn, l.dqpn, l.payloadBytes, l.icrcOk, l.error]),
      sent.map(([f, n], i) => [i + 1, f.opcode, f.psn, f.dqpn, n, true, undefined]),
    );
    assert.deepEqual(lines[1].reth, { va: '0x00007f0010000000', rkey: '0x00001234', dmaLen: 4096 });
    assert.deepEqual(lines[3].atomicEth, { va: '0x0000000000002000', rkey: '0x00000055', swapAdd: '0xffffffffffffffff', compare: '0x0000000000000000' });
    assert.deepEqual([lines[4].deth, lines[4].immDt], [{ qkey: '0x80010000', srcQp: 1 }, '0xdeadbeef']);
    assert.deepEqual(lines[6].aeth, { syndrome: 0x21, msn: 2, type: 'RNR_NAK', value: 1 });
    assert.deepEqual(lines[8].atomicAckEth, { orig: '0x000000000000002a' });
    assert.deepEqual([lines[9].ieth, lines[9].padCount], [{ rkey: '0x00001234' }, 2]);
    assert.deepEqual([lines[0].src, lines[5].src], [`${HOST}:4791`, `${VM}:4791`]);
  });

  it('keeps a packet whose ICRC is wrong as sent, and pcap-check flags it', async () => {
    const path = join(dir, 'corrupt.pcap');
    const host = await CaptureLink.open(await UdpLink.open({ ip: HOST, port: 0 }), path);
    const good = packet(HOST, VM, FROM_HOST[0][0], 13);
    // The link's source port is not 4791 here, so a packet sealed for port 4791 is wrong in transit.
    host.send(good, VM);
    await host.close();
    let out = '';
    let err = '';
    assert.equal(runPcapCheck(path, { out: (t) => (out += t), err: (t) => (err += t) }), 1);
    const line = JSON.parse(out) as { icrcOk: boolean; icrcComputed?: string; opcodeName: string };
    assert.deepEqual([line.icrcOk, line.opcodeName, typeof line.icrcComputed], [false, 'RC_SEND_ONLY', 'string']);
    assert.match(err, /1 RoCE frame\(s\) with a wrong or unchecked ICRC/);
  });

  it('refuses a capture file it cannot create', async () => {
    const inner = await UdpLink.open({ ip: HOST, port: 0 });
    try {
      await assert.rejects(CaptureLink.open(inner, join(dir, 'no/such/dir/x.pcap')), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.CaptureIo);
    } finally {
      await inner.close();
    }
  });
});
