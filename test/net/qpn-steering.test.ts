// Kernel steering of RoCE packets by destination QPN (docs/native.md, "QPN steering"): N
// BatchedUdpLinks with qpnSteering N on one address and port form an SO_REUSEPORT group, and a
// packet for QPN q arrives at the member opened (bound) q mod N-th. Addresses 127.0.45.1-9.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchedUdpLink } from '../../src/net/batched-udp-link.js';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { UdpLink } from '../../src/net/udp-link.js';
import { ROCE_UDP_PORT } from '../../src/nic/link.js';
import { bthDqpnAt, bthPsnAt, setBthAt } from '../../src/nic/roce/headers.js';
import { BTH_BYTES, Opcode } from '../../src/nic/roce/opcodes.js';
import { withNative } from '../native/with-native.js';

const SENDER_IP = '127.0.45.9';
const isNet = (code: NetErrorCode) => (e: unknown) => e instanceof NetError && e.code === code;

/** A BTH (RC SEND only) for `dqpn` with `psn`, and a 4-byte payload. */
function packet(dqpn: number, psn: number, fecn: boolean): Uint8Array {
  const b = new Uint8Array(BTH_BYTES + 4);
  setBthAt(b, 0, {
    opcode: Opcode.RcSendOnly, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff,
    // FECN/BECN share the word with the QPN: the program must mask them off.
    fecn, becn: fecn, dqpn, ackReq: false, psn,
  });
  b.set([0xde, 0xad, 0xbe, 0xef], BTH_BYTES);
  return b;
}

/** Wait until `done()` holds, polling; fails saying `what()` once `ms` have passed. */
async function until(done: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Open a group of `n` steered links on `ip`, in order: index i is the i-th bound. */
async function openGroup(ip: string, n: number, links: BatchedUdpLink[]): Promise<void> {
  for (let i = 0; i < n; i++) links.push(await BatchedUdpLink.open({ ip, port: ROCE_UDP_PORT, qpnSteering: n }));
}

async function closeAll(links: BatchedUdpLink[]): Promise<void> {
  await Promise.all(links.map((l) => l.close()));
}

/** A group of `n` steered links on `ip` and a sender on SENDER_IP, all closed however `fn` ends. */
async function withGroup(ip: string, n: number, fn: (links: BatchedUdpLink[], sender: BatchedUdpLink) => Promise<void>): Promise<void> {
  const links: BatchedUdpLink[] = [];
  try {
    await openGroup(ip, n, links);
    const sender = await BatchedUdpLink.open({ ip: SENDER_IP, port: ROCE_UDP_PORT });
    try {
      await fn(links, sender);
    } finally {
      await sender.close();
    }
  } finally {
    await closeAll(links);
  }
}

type Arrival = { member: number; bytes: Uint8Array };
function record(links: BatchedUdpLink[]): Arrival[] {
  const got: Arrival[] = [];
  links.forEach((link, member) => link.onPacket((bytes) => got.push({ member, bytes: bytes.slice() })));
  return got;
}

describe('QPN steering (BatchedUdpLink qpnSteering)', () => {
  for (const [n, ip] of [[2, '127.0.45.1'], [3, '127.0.45.2']] as const) {
    it(`a group of ${n}: every packet arrives once, at the member with index QPN mod ${n}`, withNative(async () => {
      await withGroup(ip, n, async (links, sender) => {
        const got = record(links);
        const qpns = [...Array(25).keys()].map((i) => 16 + i).concat([0xfffffe, 0xffffff]);
        const perQpn = 4;
        let psn = 0;
        for (const qpn of qpns) {
          for (let k = 0; k < perQpn; k++) sender.send(packet(qpn, psn++, k % 2 === 1), ip);
        }
        const want = qpns.length * perQpn;
        await until(() => got.length >= want, () => `${got.length} of ${want} packets arrived`);
        // Anything late and extra would show up here too.
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(got.length, want);
        const psns = got.map((g) => bthPsnAt(g.bytes, 0)).sort((a, b) => a - b);
        assert.deepEqual(psns, [...Array(want).keys()], 'every packet arrives exactly once');
        const misplaced = got.filter((g) => g.member !== bthDqpnAt(g.bytes, 0) % n);
        assert.deepEqual(misplaced.map((g) => [bthDqpnAt(g.bytes, 0), g.member]), [], 'packets [qpn, member] at the wrong member');
        for (let m = 0; m < n; m++) assert.ok(got.some((g) => g.member === m), `member ${m} received nothing`);
        assert.deepEqual(links.map((l) => l.counters().packetsReceived), links.map((_, m) => got.filter((g) => g.member === m).length));
      });
    }));
  }

  it('udpSteer sends the QPNs it lists to their member and the rest by modulo; bad overrides are refused', withNative(async (addon) => {
    const ip = '127.0.45.5';
    await withGroup(ip, 3, async (links, sender) => {
      // Through any member: the program is the group's. 0x20 (home 2) to 0, 0x21 (home 0) to 1.
      addon.udpSteer(links[1].socketFd, 3, Uint32Array.from([0x20, 0, 0x21, 1]));
      const got = record(links);
      const qpns = [0x20, 0x21, 0x22, 0x23];
      qpns.forEach((qpn, i) => sender.send(packet(qpn, i, false), ip));
      await until(() => got.length >= qpns.length, () => `${got.length} of ${qpns.length} arrived`);
      const where = new Map(got.map((g) => [bthDqpnAt(g.bytes, 0), g.member]));
      assert.deepEqual([...qpns].map((q) => where.get(q)), [0, 1, 0x22 % 3, 0x23 % 3]);
      const fd = links[0].socketFd;
      assert.throws(() => addon.udpSteer(fd, 3, Uint32Array.from([0x20])), RangeError, 'pairs');
      assert.throws(() => addon.udpSteer(fd, 3, Uint32Array.from([0x20, 3])), RangeError, 'a member past the group');
      assert.throws(() => addon.udpSteer(fd, 3, Uint32Array.from([0x1000000, 0])), RangeError, 'a QPN past 24 bits');
      assert.throws(() => addon.udpSteer(fd, 3, new Uint32Array(2 * 2001)), RangeError, 'more than 2000 overrides');
      assert.throws(() => addon.udpSteer(fd, 1, new Uint32Array(0)), RangeError);
    });
  }));

  it('sends a datagram too short to hold the QPN word (< 8 bytes) to member 0', withNative(async () => {
    const ip = '127.0.45.4';
    await withGroup(ip, 3, async (links, sender) => {
      const got = record(links);
      // The load of bytes 4..7 fails, which ends a classic BPF program with 0. An 8-byte one
      // with QPN 2 is the control: it goes to member 2.
      const lengths = [0, 1, 4, 7];
      for (const len of lengths) sender.send(new Uint8Array(len).fill(0xff), ip);
      sender.send(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 2), ip);
      await until(() => got.length >= lengths.length + 1, () => `${got.length} of ${lengths.length + 1} arrived`);
      assert.deepEqual(got.map((g) => [g.bytes.length, g.member]).sort((a, b) => a[0] - b[0]), [...lengths.map((l) => [l, 0]), [8, 2]]);
    });
  }));

  it('after a member closes, the last member takes its index (so a group is rebuilt, not patched)', withNative(async () => {
    const ip = '127.0.45.6';
    await withGroup(ip, 3, async (links, sender) => {
      await links[0].close();
      const got = record(links);
      const qpns = [30, 31, 32, 33, 34, 35];
      qpns.forEach((qpn, psn) => sender.send(packet(qpn, psn, false), ip));
      await until(() => got.length >= qpns.length, () => `${got.length} of ${qpns.length} arrived`);
      const at = (qpn: number) => got.filter((g) => bthDqpnAt(g.bytes, 0) === qpn).map((g) => g.member);
      // Index 0 is now the member bound last; index 1 is unchanged; index 2 is past the group's
      // size, so the kernel hashes: one of the two that are left.
      assert.deepEqual([at(30), at(33)], [[2], [2]]);
      assert.deepEqual([at(31), at(34)], [[1], [1]]);
      for (const qpn of [32, 35]) assert.ok(at(qpn).length === 1 && at(qpn)[0] !== 0, `QPN ${qpn} at ${String(at(qpn))}`);
    });
  }));

  it('refuses a plain bind on an address a steered group holds, and frees it when the group closes', withNative(async () => {
    const ip = '127.0.45.3';
    const links: BatchedUdpLink[] = [];
    try {
      await openGroup(ip, 2, links);
      await assert.rejects(BatchedUdpLink.open({ ip, port: ROCE_UDP_PORT }), (e: unknown) => {
        assert.ok(isNet(NetErrorCode.AddressInUse)(e), String(e));
        assert.match((e as Error).message, /127\.0\.45\.3:4791 is bound by another socket/);
        assert.equal(((e as Error).cause as { code?: string }).code, 'EADDRINUSE');
        return true;
      });
      await assert.rejects(UdpLink.open({ ip, port: ROCE_UDP_PORT }), isNet(NetErrorCode.AddressInUse));
    } finally {
      await closeAll(links);
    }
    const plain = await BatchedUdpLink.open({ ip, port: ROCE_UDP_PORT });
    await plain.close();
  }));

  it('refuses bad qpnSteering values before binding', async () => {
    for (const bad of [1, 65, 2.5, 0, -2, Number.NaN]) {
      await assert.rejects(BatchedUdpLink.open({ ip: '127.0.45.5', port: ROCE_UDP_PORT, qpnSteering: bad }), (e: unknown) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, /^qpnSteering .* is not in 2\.\.64$/);
        return true;
      });
    }
    await assert.rejects(BatchedUdpLink.open({ ip: '127.0.45.5', port: 0, qpnSteering: 2 }), /qpnSteering needs a fixed port/);
  });

  it('the addon refuses a bad steerGroup before making a socket', withNative((addon) => {
    for (const bad of [1, 65, 2.5]) {
      assert.throws(() => addon.udpBind('127.0.45.5', ROCE_UDP_PORT, bad), (e: unknown) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, /^steerGroup must be an integer in \[2, 64\], got /);
        return true;
      });
    }
    assert.throws(() => addon.udpBind('127.0.45.5', ROCE_UDP_PORT, '3' as unknown as number), TypeError);
    assert.throws(() => addon.udpBind('127.0.45.5', 0, 2), RangeError);
    // Nothing was left bound: a plain socket takes the address.
    const fd = addon.udpBind('127.0.45.5', ROCE_UDP_PORT);
    addon.closeFd(fd);
  }));
});
