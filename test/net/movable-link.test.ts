// MovableLink (R7): one Link for the provider's whole life while the socket holding the VM's
// address is released and bound again. Real UDP on loopback, addresses 127.0.22.x (this brief's
// block); the "other host" is another socket in this process.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { MovableLink } from '../../src/net/movable-link.js';
import { UdpLink } from '../../src/net/udp-link.js';
import type { LinkAddress } from '../../src/nic/link.js';

const VM = '127.0.22.10';
const PEER = '127.0.22.11';
const isNet = (code: NetErrorCode) => (e: unknown) => e instanceof NetError && e.code === code;

const udp = (): Promise<UdpLink> => UdpLink.open({ ip: VM });

/** Collects what `link` delivers; `next(n)` resolves once n packets in all have arrived. */
function collector(link: { onPacket(h: (p: Uint8Array, f: LinkAddress) => void): void }) {
  const got: number[] = [];
  const waiters: [number, () => void][] = [];
  link.onPacket((p) => {
    got.push(p[0]);
    for (const [n, resolve] of waiters) if (got.length >= n) resolve();
  });
  return { got, next: (n: number) => new Promise<void>((resolve) => (got.length >= n ? resolve() : waiters.push([n, resolve]))) };
}

describe('MovableLink', () => {
  it('carries packets while bound, loses and counts them while released, and keeps its handler across binds', async () => {
    const peer = await UdpLink.open({ ip: PEER });
    const link = new MovableLink(VM, udp);
    try {
      assert.equal(link.isBound, false);
      assert.equal(link.localPort, 4791);
      link.send(Uint8Array.of(0), PEER); // before the first bind: lost
      assert.equal(link.counters.sentWhileReleased, 1);
      await link.bind();
      const atVm = collector(link);
      const atPeer = collector(peer);
      link.send(Uint8Array.of(1), PEER);
      peer.send(Uint8Array.of(2), VM);
      await Promise.all([atPeer.next(1), atVm.next(1)]);

      await link.release();
      assert.equal(link.isBound, false);
      link.send(Uint8Array.of(3), PEER);
      assert.equal(link.counters.sentWhileReleased, 2);
      // Sent to the address while nobody holds it: lost (R8), even once the address is bound again.
      peer.send(Uint8Array.of(4), VM);
      await peer.settled();

      await link.bind();
      link.send(Uint8Array.of(5), PEER);
      peer.send(Uint8Array.of(6), VM);
      await Promise.all([atPeer.next(2), atVm.next(2)]);
      assert.deepEqual(atPeer.got, [1, 5]);
      assert.deepEqual(atVm.got, [2, 6]);
      assert.deepEqual({ ...link.counters }, { binds: 2, releases: 1, sent: 2, sentWhileReleased: 2 });
    } finally {
      await link.close();
      await peer.close();
    }
  });

  it('binds only when nobody else holds the address, and is free for another socket once released', async () => {
    const link = new MovableLink(VM, udp);
    const other = await udp(); // the source host still holds the address
    await assert.rejects(link.bind(), isNet(NetErrorCode.AddressInUse));
    assert.equal(link.isBound, false);
    await other.close();
    await link.bind();
    await assert.rejects(link.bind(), isNet(NetErrorCode.Closed), 'already bound');
    await assert.rejects(udp(), isNet(NetErrorCode.AddressInUse));
    await link.release();
    const next = await udp(); // bound at the first try
    await next.close();
    await link.close();
    await assert.rejects(link.bind(), isNet(NetErrorCode.Closed), 'closed for good');
  });

  it('refuses an opener that binds another address', async () => {
    const link = new MovableLink(VM, () => UdpLink.open({ ip: PEER }));
    await assert.rejects(link.bind(), isNet(NetErrorCode.InvalidAddress));
    assert.equal(link.isBound, false);
    // The stray socket was closed again: the address is free.
    const peer = await UdpLink.open({ ip: PEER });
    await peer.close();
    assert.throws(() => new MovableLink('vm.example', udp), isNet(NetErrorCode.InvalidAddress));
  });
});
