// What the kernel really puts on the wire: a raw IPv4 socket (the addon's rawIpv4Open) sees every
// UDP packet delivered on lo with its IP header, so these tests read the id and DF of packets the
// links sent. vrdma seals ICRCs under id 0 with DF (src/net/ip-id-zero.ts says why).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import type { NativeAddon } from '../../src/native/addon.js';
import { BatchedUdpLink } from '../../src/net/batched-udp-link.js';
import { dgramSocketFd } from '../../src/net/ip-id-zero.js';
import { UdpLink } from '../../src/net/udp-link.js';
import { ipv4 } from '../../src/nic/roce/icrc.js';
import type { Link } from '../../src/nic/link.js';
import { withNative } from '../native/with-native.js';

const SRC = '127.0.1.5';
const DST = '127.0.0.2';

interface Seen { ipId: number; df: boolean }

/** Datagrams each test sends, and how many the raw socket must see (it may drop some under load). */
const SENT = 20;
const MIN_SEEN = 3;

/** Opens the raw socket, or fails saying why raw sockets are needed. */
function rawUdp(native: NativeAddon): number {
  try {
    return native.rawIpv4Open(17);
  } catch (err) {
    assert.fail(`cannot open a raw IPv4 socket to see the IP header on lo (needs CAP_NET_RAW): ${String(err)}`);
  }
}

/** IP ids and DF of the packets the raw socket saw from srcIp:srcPort to dstIp:dstPort. */
async function captured(native: NativeAddon, raw: number, srcPort: number, dstPort: number, want: number): Promise<Seen[]> {
  const seen: Seen[] = [];
  const data = new Uint8Array(64 * 2048);
  const desc = new Uint32Array(64 * native.udp.DESC_WORDS);
  const W = native.udp.DESC_WORDS;
  // The raw socket sees every UDP datagram on the host; while other tests flood lo it may drop
  // some of ours, so read until all are seen or the deadline passes, and callers ask for a few.
  const deadline = Date.now() + 3000;
  while (seen.length < want && Date.now() < deadline) {
    if ((native.pollFd(raw, native.poll.POLLIN, 0) & native.poll.POLLIN) === 0) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    for (let i = 0; i < 64; i++) desc.set([i * 2048, 2048], i * W);
    const n = native.udpRecvMany(raw, data, desc, 64);
    for (let i = 0; i < n; i++) {
      const o = desc[i * W];
      const v = new DataView(data.buffer, o, desc[i * W + 1]);
      const ihl = (v.getUint8(0) & 15) * 4;
      const matches =
        v.getUint32(12) === ipv4(SRC) && v.getUint32(16) === ipv4(DST) && v.getUint16(ihl) === srcPort && v.getUint16(ihl + 2) === dstPort;
      if (matches) seen.push({ ipId: v.getUint16(4), df: (v.getUint16(6) & 0x4000) !== 0 });
    }
  }
  return seen;
}

async function sendThrough(native: NativeAddon, link: Link, dstPort: number): Promise<Seen[]> {
  const raw = rawUdp(native);
  try {
    for (let i = 0; i < SENT; i++) link.send(new Uint8Array(40).fill(i), DST, dstPort);
    return await captured(native, raw, link.localPort, dstPort, SENT);
  } finally {
    native.closeFd(raw);
  }
}

async function withSink(body: (port: number) => Promise<void>): Promise<void> {
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, DST, r));
  try {
    await body(sink.address().port);
  } finally {
    sink.close();
  }
}

describe('IPv4 id on the wire', () => {
  it('a plain node:dgram socket sends changing ids, so the capture can tell', withNative(async (native) => {
    await withSink(async (port) => {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, SRC, r));
      const raw = rawUdp(native);
      try {
        for (let i = 0; i < SENT; i++) await new Promise((r) => sock.send(new Uint8Array(40), port, DST, r));
        const seen = await captured(native, raw, sock.address().port, port, SENT);
        assert.ok(seen.length >= MIN_SEEN, `saw ${seen.length} of ${SENT} datagrams`);
        assert.ok(seen.every((s) => s.df), 'Linux sets DF under IP_PMTUDISC_WANT too');
        assert.ok(seen.some((s) => s.ipId !== 0), `ids ${seen.map((s) => s.ipId).join(',')}`);
      } finally {
        native.closeFd(raw);
        sock.close();
      }
    });
  }));

  it('BatchedUdpLink sends id 0 with DF', withNative(async (native) => {
    await withSink(async (port) => {
      const link = await BatchedUdpLink.open({ ip: SRC, port: 0 });
      try {
        const seen = await sendThrough(native, link, port);
        assert.ok(seen.length >= MIN_SEEN, `saw ${seen.length} of ${SENT} datagrams`);
        assert.deepEqual(seen, Array.from({ length: seen.length }, () => ({ ipId: 0, df: true })));
      } finally {
        await link.close();
      }
    });
  }));

  it('UdpLink sends id 0 with DF when the addon can reach its fd', withNative(async (native) => {
    await withSink(async (port) => {
      const link = await UdpLink.open({ ip: SRC, port: 0 });
      try {
        // Node 20 on Linux exposes the bound handle's fd: this must work here.
        assert.deepEqual(link.ipId, { ipIdZero: true });
        const seen = await sendThrough(native, link, port);
        assert.ok(seen.length >= MIN_SEEN, `saw ${seen.length} of ${SENT} datagrams`);
        assert.deepEqual(seen, Array.from({ length: seen.length }, () => ({ ipId: 0, df: true })));
      } finally {
        await link.close();
      }
    });
  }));

  it('BatchedUdpLink asks for large socket buffers', withNative(async () => {
    const link = await BatchedUdpLink.open({ ip: SRC, port: 0, recvBufferBytes: 1 << 20, sendBufferBytes: 1 << 20 });
    try {
      assert.ok(link.bufferBytes.recv >= 1 << 20, `recv buffer ${link.bufferBytes.recv}`);
      assert.ok(link.bufferBytes.send >= 1 << 20, `send buffer ${link.bufferBytes.send}`);
    } finally {
      await link.close();
    }
    await assert.rejects(BatchedUdpLink.open({ ip: SRC, port: 0, recvBufferBytes: 0 }), RangeError);
  }));

  it('finds a bound dgram socket\'s fd, and says why not before bind', async () => {
    const sock = dgram.createSocket('udp4');
    assert.match(String(dgramSocketFd(sock)), /not bound/);
    await new Promise<void>((r) => sock.bind(0, SRC, r));
    try {
      const fd = dgramSocketFd(sock);
      assert.equal(typeof fd, 'number');
    } finally {
      sock.close();
    }
  });
});
