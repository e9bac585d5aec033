import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ROCE_UDP_PORT } from '../../src/nic/link.js';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { nativeStatus } from '../../src/native/addon.js';
import { POOLED_SEND_BYTES, UdpLink, type UdpLinkOptions } from '../../src/net/udp-link.js';

// Addresses of this file only (127.0.3.x), so parallel test files never contend for one.
const HOST = '127.0.3.1';
const VM = '127.0.3.2';

const isNet = (code: NetErrorCode) => (e: unknown) => e instanceof NetError && e.code === code;

/** Resolves with the next `count` packets the link receives (copied), with their sources. */
function receive(link: UdpLink, count: number): Promise<{ bytes: Uint8Array; ip: string; port: number }[]> {
  const got: { bytes: Uint8Array; ip: string; port: number }[] = [];
  return new Promise((resolve) => {
    if (count === 0) resolve(got);
    link.onPacket((packet, from) => {
      got.push({ bytes: packet.slice(), ip: from.ip, port: from.port });
      if (got.length === count) resolve(got);
    });
  });
}

/** Random packets of 16 bytes to 4 KiB of payload plus RETH, BTH and ICRC (4128 bytes). */
const packets = (max: number) => fc.array(fc.uint8Array({ minLength: 16, maxLength: 4128 }), { minLength: 1, maxLength: max });

/** Runs `fn` with two links on port 0 of HOST and VM, and closes both after it. */
async function withPair(open: (opts: UdpLinkOptions) => Promise<UdpLink>, fn: (a: UdpLink, b: UdpLink) => Promise<void>): Promise<void> {
  const [a, b] = await Promise.all([open({ ip: HOST, port: 0 }), open({ ip: VM, port: 0 })]);
  try {
    await fn(a, b);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

// The data-moving behaviour holds on both paths: sendmmsg/recvmmsg through the addon (where it is
// built) and one node:dgram call per datagram.
for (const batched of [true, false]) {
  const open = (opts: UdpLinkOptions) => UdpLink.open({ ...opts, batched });
  describe(`UdpLink on loopback, ${batched ? 'batched' : 'dgram'} path`, () => {
    it('takes the path asked for, or says why not', async () => {
      const link = await open({ ip: HOST, port: 0 });
      try {
        if (!batched) assert.deepEqual(link.batching, { batched: false, reason: 'batched socket calls declined' });
        else if (nativeStatus().available) assert.deepEqual(link.batching, { batched: true });
        else assert.equal(link.batching.batched, false);
      } finally {
        await link.close();
      }
    });

    it('moves packets both ways between two addresses on port 4791, intact, in order, with sources', async () => {
      const host = await open({ ip: HOST });
      const vm = await open({ ip: VM });
      try {
        assert.equal(host.localPort, ROCE_UDP_PORT);
        await fc.assert(
          fc.asyncProperty(packets(200), packets(200), async (toVm, toHost) => {
            // A window of at most 200 packets of 4 KiB fits the receive buffers: loopback never drops.
            const atVm = receive(vm, toVm.length);
            const atHost = receive(host, toHost.length);
            toVm.forEach((p) => host.send(p, VM));
            toHost.forEach((p) => vm.send(p, HOST));
            const [gotVm, gotHost] = await Promise.all([atVm, atHost]);
            assert.deepEqual(gotVm.map((g) => g.bytes), toVm);
            assert.deepEqual(gotHost.map((g) => g.bytes), toHost);
            assert.ok(gotVm.every((g) => g.ip === HOST && g.port === ROCE_UDP_PORT));
            assert.ok(gotHost.every((g) => g.ip === VM && g.port === ROCE_UDP_PORT));
          }),
          { numRuns: 15 },
        );
        const h = host.counters();
        const v = vm.counters();
        assert.equal(h.packetsSent, v.packetsReceived);
        assert.equal(h.bytesSent, v.bytesReceived);
        assert.equal(v.packetsSent, h.packetsReceived);
        assert.equal(v.bytesSent, h.bytesReceived);
        assert.equal(h.sendErrors + h.sendDropped + v.sendErrors + v.sendDropped, 0);
        assert.ok(h.packetsSent >= 15);
      } finally {
        await Promise.all([host.close(), vm.close()]);
      }
    });

    it('lets the caller reuse its bytes as soon as send returns', async () => {
      await withPair(open, async (a, b) => {
        const got = receive(b, 100);
        const buf = new Uint8Array(64);
        for (let i = 0; i < 100; i++) {
          buf.fill(i);
          a.send(buf, VM, b.localPort);
        }
        (await got).forEach((g, i) => assert.deepEqual(g.bytes, new Uint8Array(64).fill(i)));
      });
    });

    it('reuses its send buffers only once the kernel has each datagram', async () => {
      await withPair(open, async (a, b) => {
        // Rounds larger than the pool it keeps, full-size packets, each with its own pattern.
        const size = POOLED_SEND_BYTES; // full-size packets take the pooled path
        for (let round = 0; round < 3; round++) {
          const got = receive(b, 600);
          const buf = new Uint8Array(size);
          for (let i = 0; i < 600; i++) {
            buf.fill((round * 600 + i) % 251);
            new DataView(buf.buffer).setUint32(0, i);
            a.send(buf, VM, b.localPort);
          }
          const arrived = (await got).map((g) => g.bytes).sort((x, y) => new DataView(x.buffer).getUint32(0) - new DataView(y.buffer).getUint32(0));
          arrived.forEach((g, i) => {
            const want = new Uint8Array(size).fill((round * 600 + i) % 251);
            new DataView(want.buffer).setUint32(0, i);
            assert.deepEqual(g, want, `round ${round} packet ${i}`);
          });
        }
      });
    });

    it('never throws from send for network reasons; counts what it drops', async () => {
      const link = await open({ ip: HOST, port: 0, maxQueuedSends: 4 });
      const packet = new Uint8Array(100);
      try {
        // Nobody listens at 127.0.3.99: the kernel takes the packet and loses it, as a wire would.
        for (let i = 0; i < 10; i++) link.send(packet, '127.0.3.99');
        if (link.batching.batched) {
          // The batched path queues in its arena, flushed whole when full: it does not drop here.
          assert.equal(link.counters().sendDropped, 0);
          await link.settled();
          assert.deepEqual([link.counters().packetsSent, link.counters().bytesSent, link.counters().sendCalls], [10, 1000, 1], 'one sendmmsg for the turn');
        } else {
          assert.equal(link.counters().sendDropped, 6, 'past 4 queued sends the link drops');
          await link.settled();
          assert.deepEqual([link.counters().packetsSent, link.counters().bytesSent, link.counters().sendCalls], [4, 400, 0]);
        }
        // A malformed address is the caller's bug, not the network's.
        assert.throws(() => link.send(packet, 'peer.example'), isNet(NetErrorCode.InvalidAddress));
        assert.throws(() => link.send(packet, '127.0.3.99', 0), isNet(NetErrorCode.InvalidAddress));
      } finally {
        await link.close();
      }
      const before = link.counters().sendDropped;
      link.send(packet, '127.0.3.99');
      assert.equal(link.counters().sendDropped, before + 1);
      assert.equal(link.isClosed, true);
    });

    it('reads what queued behind an arrival in batches, and counts its system calls', async () => {
      await withPair(open, async (a, b) => {
        const got = receive(b, 300);
        const buf = new Uint8Array(200);
        for (let i = 0; i < 300; i++) {
          new DataView(buf.buffer).setUint32(0, i);
          a.send(buf, VM, b.localPort);
        }
        const seq = (await got).map((g) => new DataView(g.bytes.buffer).getUint32(0));
        assert.deepEqual(seq, [...Array(300).keys()], 'in order');
        const [ca, cb] = [a.counters(), b.counters()];
        assert.deepEqual([ca.packetsSent, cb.packetsReceived, cb.receiveTruncated], [300, 300, 0]);
        if (a.batching.batched) {
          // 300 sends in one turn leave in sendmmsg calls of up to udp.MAX_BATCH; the receiver read
          // at least some of them by recvmmsg behind a dgram arrival.
          assert.ok(ca.sendCalls >= 1 && ca.sendCalls < 300, `${ca.sendCalls} sendmmsg calls`);
          assert.ok(cb.recvCalls >= 1, `${cb.recvCalls} recvmmsg calls`);
        } else {
          assert.deepEqual([ca.sendCalls, cb.recvCalls], [0, 0]);
        }
      });
    });
  });
}

describe('UdpLink on loopback', () => {
  it('asks for large socket buffers', async () => {
    const link = await UdpLink.open({ ip: HOST, port: 0, recvBufferBytes: 1 << 20, sendBufferBytes: 1 << 20 });
    try {
      // Linux doubles the value asked for (to cover its bookkeeping) unless capped by rmem_max.
      assert.ok(link.bufferBytes.recv >= 1 << 20, `recv buffer ${link.bufferBytes.recv}`);
      assert.ok(link.bufferBytes.send >= 1 << 20, `send buffer ${link.bufferBytes.send}`);
    } finally {
      await link.close();
    }
    assert.throws(() => link.bufferBytes, isNet(NetErrorCode.Closed));
  });

  it('refuses bad binds with typed errors', async () => {
    const link = await UdpLink.open({ ip: HOST, port: 0 });
    try {
      await assert.rejects(UdpLink.open({ ip: HOST, port: link.localPort }), isNet(NetErrorCode.AddressInUse));
      await assert.rejects(UdpLink.open({ ip: HOST, port: link.localPort }), /ADDRESS_IN_USE: .*127\.0\.3\.1:\d+ is bound by another socket/);
    } finally {
      await link.close();
    }
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    await assert.rejects(UdpLink.open({ ip: '192.0.2.1', port: 0 }), isNet(NetErrorCode.AddressNotAvailable));
    for (const ip of ['localhost', '::1', '127.0.0.256', '', '1.2.3']) {
      await assert.rejects(UdpLink.open({ ip, port: 0 }), isNet(NetErrorCode.InvalidAddress));
    }
    for (const port of [-1, 65536, 1.5, NaN]) {
      await assert.rejects(UdpLink.open({ ip: HOST, port }), isNet(NetErrorCode.InvalidAddress));
    }
  });

  it('frees the address on close, so it can be bound again at once', async () => {
    for (let i = 0; i < 20; i++) {
      const link = await UdpLink.open({ ip: VM, port: 14791 });
      await link.close();
    }
  });
});

class Child {
  private readonly proc: ChildProcess;
  private readonly ready: Promise<unknown>;
  constructor(ip: string, port: number, name: string) {
    this.proc = fork(fileURLToPath(new URL('./link-child.js', import.meta.url)), [ip, String(port), name], { stdio: 'inherit' });
    this.ready = once(this.proc, 'message');
  }
  async ask(msg: string): Promise<Record<string, unknown>> {
    await this.ready;
    const reply = once(this.proc, 'message');
    this.proc.send(msg);
    return (await reply)[0] as Record<string, unknown>;
  }
  async exit(): Promise<void> {
    const exited = once(this.proc, 'exit');
    this.proc.send('exit');
    await exited;
  }
}

describe('UdpLink address migration between processes (R7)', () => {
  it('the source closes, the destination binds the same address at once and answers', { timeout: 20_000 }, async () => {
    const VM_ADDR = '127.0.3.20';
    const peer = await UdpLink.open({ ip: '127.0.3.10' });
    const source = new Child(VM_ADDR, ROCE_UDP_PORT, 'src');
    const destination = new Child(VM_ADDR, ROCE_UDP_PORT, 'dst');
    const ping = async (n: number): Promise<string> => {
      const reply = receive(peer, 1);
      peer.send(Uint8Array.of(n), VM_ADDR);
      const [r] = await reply;
      assert.equal(r.ip, VM_ADDR);
      assert.equal(r.port, ROCE_UDP_PORT);
      assert.equal(r.bytes[r.bytes.length - 1], n);
      return new TextDecoder().decode(r.bytes.subarray(0, -1));
    };
    try {
      assert.deepEqual(await source.ask('open'), { bound: ROCE_UDP_PORT });
      assert.equal(await ping(1), 'src');
      assert.deepEqual(await destination.ask('open'), { error: NetErrorCode.AddressInUse }, 'the address is held by the source');
      await assert.rejects(UdpLink.open({ ip: VM_ADDR }), isNet(NetErrorCode.AddressInUse));
      const closed = await source.ask('close');
      assert.deepEqual(await destination.ask('open'), { bound: ROCE_UDP_PORT }, 'bound on the first try after the source closed');
      assert.equal(await ping(2), 'dst');
      assert.equal(await ping(3), 'dst');
      assert.deepEqual((closed as { closed: { packetsReceived: number } }).closed.packetsReceived, 1);
    } finally {
      await Promise.all([source.exit(), destination.exit(), peer.close()]);
    }
  });
});
