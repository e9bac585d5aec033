// A host pool's sockets held by its main thread (src/host/pool/pool-sockets.ts), both ends in this
// thread over a real MessageChannel: a bind hands back packet rings that carry datagrams both ways
// through a real UDP socket, a second bind of the address fails as a socket's would, a task
// releases only its own sockets, and a task dropped (lost with its worker) leaves no address held,
// not even one whose bind was in flight.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { MessageChannel } from 'node:worker_threads';
import { after, describe, it } from 'node:test';
import { NetError, NetErrorCode } from '../../src/net/errors.js';
import { PortClient } from '../../src/host/pool/port-channel.js';
import { PoolSockets, socketOpener } from '../../src/host/pool/pool-sockets.js';
import type { LinkAddress } from '../../src/nic/link.js';

const VM_IP = '127.0.35.90';
const PEER_IP = '127.0.35.91';
const PORT = 4791;

describe('pool sockets held by the main thread', () => {
  const sockets = new PoolSockets(64 * 1024);
  const channels: MessageChannel[] = [];
  after(async () => {
    for (const c of channels) {
      c.port1.close();
      c.port2.close();
    }
    await sockets.close();
  });

  function taskClient(task: number): PortClient {
    const channel = new MessageChannel();
    channels.push(channel);
    sockets.serve(task, channel.port1);
    return new PortClient(channel.port2, `task ${task}`);
  }

  it('carries datagrams both ways, refuses a second bind, and releases on close', async () => {
    const client = taskClient(1);
    const link = await socketOpener(client, VM_IP, PORT)();
    assert.deepEqual(sockets.addresses(), [VM_IP]);
    await assert.rejects(socketOpener(taskClient(2), VM_IP, PORT)(), (err: unknown) => err instanceof NetError && err.code === NetErrorCode.AddressInUse);

    const peer = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => peer.bind(PORT, PEER_IP, resolve));
    try {
      const arrived = new Promise<{ bytes: string; from: string }>((resolve) => link.onPacket((b: Uint8Array, from: LinkAddress) => resolve({ bytes: Buffer.from(b).toString(), from: `${from.ip}:${from.port}` })));
      const echoed = new Promise<string>((resolve) => peer.once('message', (m, r) => resolve(`${m.toString()} from ${r.address}:${r.port}`)));
      link.send(Buffer.from('to the peer'), PEER_IP, PORT);
      assert.equal(await echoed, `to the peer from ${VM_IP}:${PORT}`);
      peer.send('to the VM', PORT, VM_IP);
      assert.deepEqual(await arrived, { bytes: 'to the VM', from: `${PEER_IP}:${PORT}` });
    } finally {
      peer.close();
    }
    await link.close();
    assert.deepEqual(sockets.addresses(), []);
    // The address is free: it binds again.
    const again = await socketOpener(client, VM_IP, PORT)();
    await again.close();
  });

  it('lets a task release only its own sockets', async () => {
    const mine = await sockets.ops(3).bindAddress({ ip: VM_IP, port: PORT }) as { id: number };
    await assert.rejects(async () => sockets.ops(4).releaseAddress({ id: mine.id }), /task 4 holds no socket/);
    assert.deepEqual(sockets.addresses(), [VM_IP]);
    await sockets.ops(3).releaseAddress({ id: mine.id });
    assert.deepEqual(sockets.addresses(), []);
  });

  it('closes what a dropped task held, and a socket bound for it after it was dropped', async () => {
    const ops = sockets.ops(5);
    await ops.bindAddress({ ip: VM_IP, port: PORT });
    const inFlight = ops.bindAddress({ ip: PEER_IP, port: PORT });
    await sockets.dropTask(5);
    await assert.rejects(async () => inFlight, /task 5 has ended/);
    assert.deepEqual(sockets.addresses(), []);
    // Both addresses are free again.
    for (const ip of [VM_IP, PEER_IP]) {
      const bound = await sockets.ops(6).bindAddress({ ip, port: PORT }) as { id: number };
      await sockets.ops(6).releaseAddress({ id: bound.id });
    }
  });
});
