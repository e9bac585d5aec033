import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { BatchedUdpLink } from '../../src/net/batched-udp-link.js';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { UdpLink } from '../../src/net/udp-link.js';
import type { Link } from '../../src/nic/link.js';
import { withNative } from '../native/with-native.js';

const run = promisify(execFile);
const isNet = (code: NetErrorCode) => (e: unknown) => e instanceof NetError && e.code === code;

type Got = { bytes: Uint8Array; ip: string; port: number };
function receive(link: Link, count: number): Promise<Got[]> {
  const got: Got[] = [];
  return new Promise((resolve) => {
    if (count === 0) resolve(got);
    link.onPacket((packet, from) => {
      got.push({ bytes: packet.slice(), ip: from.ip, port: from.port });
      if (got.length === count) resolve(got);
    });
  });
}

type Open = (ip: string) => Promise<Link & { counters(): { packetsSent: number; bytesSent: number; packetsReceived: number; bytesReceived: number } }>;
const dgramLink: Open = (ip) => UdpLink.open({ ip, port: 0 });
const batchedLink: Open = (ip) => BatchedUdpLink.open({ ip, port: 0 });

/** Run the same traffic over a pair of links; returns what each side received. */
async function exchange(openA: Open, openB: Open, ipA: string, ipB: string, rounds: Uint8Array[][][]): Promise<{ atA: Got[]; atB: Got[]; counters: unknown[] }> {
  const a = await openA(ipA);
  const b = await openB(ipB);
  const atA: Got[] = [];
  const atB: Got[] = [];
  try {
    for (const [toB, toA] of rounds) {
      // Windows of at most 16 packets of 4 KiB stay within the kernel's default socket buffer.
      const gotB = receive(b, toB.length);
      const gotA = receive(a, toA.length);
      toB.forEach((p) => a.send(p, ipB, b.localPort));
      toA.forEach((p) => b.send(p, ipA, a.localPort));
      atB.push(...(await gotB));
      atA.push(...(await gotA));
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
  // Ports are ephemeral: compare them as "the peer's", not by number.
  const norm = (g: Got[], peer: Link) => g.map((x) => ({ ...x, port: x.port === peer.localPort ? 'peer' : x.port }));
  const pick = (c: { packetsSent: number; bytesSent: number; packetsReceived: number; bytesReceived: number }) => [c.packetsSent, c.bytesSent, c.packetsReceived, c.bytesReceived];
  return { atA: norm(atA, b) as unknown as Got[], atB: norm(atB, a) as unknown as Got[], counters: [pick(a.counters()), pick(b.counters())] };
}

const window = fc.array(fc.uint8Array({ minLength: 16, maxLength: 4128 }), { maxLength: 16 });

describe('BatchedUdpLink', () => {
  it('carries the same traffic as UdpLink: same bytes, order, sources and counters, in every pairing', withNative(async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(window, window), { minLength: 1, maxLength: 6 }), async (rounds) => {
        const reference = await exchange(dgramLink, dgramLink, '127.0.3.60', '127.0.3.61', rounds);
        assert.deepEqual(reference.atB.map((g) => g.bytes), rounds.flatMap(([toB]) => toB));
        assert.deepEqual(reference.atA.map((g) => g.bytes), rounds.flatMap(([, toA]) => toA));
        for (const [openA, openB] of [[batchedLink, batchedLink], [dgramLink, batchedLink], [batchedLink, dgramLink]]) {
          assert.deepEqual(await exchange(openA, openB, '127.0.3.60', '127.0.3.61', rounds), reference);
        }
      }),
      { numRuns: 8 },
    );
  }));

  it('sends a burst made in one turn with few system calls', withNative(async () => {
    const a = await BatchedUdpLink.open({ ip: '127.0.3.62', port: 0 });
    const b = await BatchedUdpLink.open({ ip: '127.0.3.63', port: 0 });
    try {
      const got = receive(b, 100);
      for (let i = 0; i < 100; i++) a.send(Uint8Array.of(i, 1, 2, 3), '127.0.3.63', b.localPort);
      assert.deepEqual((await got).map((g) => g.bytes[0]), [...Array(100).keys()]);
      assert.deepEqual([a.counters().packetsSent, a.counters().sendCalls], [100, 1]);
      assert.ok(b.counters().recvCalls < 100, `recv calls ${b.counters().recvCalls}`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }));

  it('refuses bad binds with the same typed errors, and frees the address on close', withNative(async () => {
    const held = await UdpLink.open({ ip: '127.0.3.64', port: 0 });
    try {
      await assert.rejects(BatchedUdpLink.open({ ip: '127.0.3.64', port: held.localPort }), isNet(NetErrorCode.AddressInUse));
    } finally {
      await held.close();
    }
    await assert.rejects(BatchedUdpLink.open({ ip: '192.0.2.1', port: 0 }), isNet(NetErrorCode.AddressNotAvailable));
    await assert.rejects(BatchedUdpLink.open({ ip: '::1', port: 0 }), isNet(NetErrorCode.InvalidAddress));
    const b = await BatchedUdpLink.open({ ip: '127.0.3.64', port: 0 });
    await b.close();
    const again = await UdpLink.open({ ip: '127.0.3.64', port: b.localPort });
    await again.close();
    b.send(new Uint8Array(8), '127.0.3.64');
    assert.equal(b.counters().sendDropped, 1);
  }));

  it('drops and counts a datagram longer than its receive slot', withNative(async () => {
    const a = await UdpLink.open({ ip: '127.0.3.65', port: 0 });
    const b = await BatchedUdpLink.open({ ip: '127.0.3.66', port: 0, maxPacketBytes: 64 });
    try {
      const got = receive(b, 1);
      a.send(new Uint8Array(65), '127.0.3.66', b.localPort);
      a.send(new Uint8Array(64).fill(9), '127.0.3.66', b.localPort);
      assert.deepEqual((await got)[0].bytes, new Uint8Array(64).fill(9));
      assert.equal(b.counters().receiveTruncated, 1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }));

  it('says why it cannot open without the addon, while UdpLink still works', async () => {
    const script = `
      import { BatchedUdpLink } from ${JSON.stringify(new URL('../../src/net/batched-udp-link.js', import.meta.url).href)};
      import { UdpLink } from ${JSON.stringify(new URL('../../src/net/udp-link.js', import.meta.url).href)};
      const l = await UdpLink.open({ ip: '127.0.3.67', port: 0 });
      await l.close();
      try { await BatchedUdpLink.open({ ip: '127.0.3.67', port: 0 }); } catch (e) { console.log(e.code, e.message); }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, VRDMA_NATIVE_DISABLE: '1' } });
    assert.match(stdout, /^NATIVE_UNAVAILABLE NATIVE_UNAVAILABLE: native addon unavailable: native addon disabled by VRDMA_NATIVE_DISABLE=1/);
  });
});
