// CommitGate over a recording fake link: sends are copied and held until release(), the first
// held send of a batch rings `schedule` once, release() sends in order, halt() drops and counts,
// received packets pass until halted, close() closes the link below.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommitGate } from '../../src/backend/commit-gate.js';
import type { Link, LinkAddress, PacketHandler } from '../../src/nic/link.js';

class FakeLink implements Link {
  readonly localIp = '10.0.0.1';
  readonly localPort = 4791;
  readonly sent: { bytes: number[]; ip: string; port: number | undefined }[] = [];
  handler: PacketHandler | null = null;
  closed = 0;

  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    this.sent.push({ bytes: [...packet], ip: dstIp, port: dstPort });
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.closed++;
  }

  deliver(packet: Uint8Array, from: LinkAddress): void {
    assert.ok(this.handler, 'a handler is installed');
    this.handler(packet, from);
  }
}

function gated() {
  const link = new FakeLink();
  let rings = 0;
  const gate = new CommitGate(link, () => rings++);
  return { link, gate, rings: () => rings };
}

describe('commit gate', () => {
  it('holds sends until release(), then sends them in order with their addresses', () => {
    const { link, gate } = gated();
    assert.equal(gate.localIp, '10.0.0.1');
    assert.equal(gate.localPort, 4791);
    assert.equal(gate.holding, false);
    gate.send(Uint8Array.of(1), '10.0.0.2');
    gate.send(Uint8Array.of(2, 2), '10.0.0.3', 5000);
    gate.send(Uint8Array.of(3), '10.0.0.2', 4791);
    assert.equal(gate.holding, true);
    assert.deepEqual(link.sent, [], 'nothing leaves before the commit');
    gate.release();
    assert.deepEqual(link.sent, [
      { bytes: [1], ip: '10.0.0.2', port: undefined },
      { bytes: [2, 2], ip: '10.0.0.3', port: 5000 },
      { bytes: [3], ip: '10.0.0.2', port: 4791 },
    ]);
    assert.equal(gate.holding, false);
    assert.deepEqual(gate.counters, { released: 3, dropped: 0 });
    gate.release();
    assert.equal(link.sent.length, 3, 'a release with nothing held sends nothing');
  });

  it('rings schedule once per batch: on the first held send after each release', () => {
    const { gate, rings } = gated();
    assert.equal(rings(), 0);
    gate.send(Uint8Array.of(1), 'a');
    assert.equal(rings(), 1);
    gate.send(Uint8Array.of(2), 'a');
    gate.send(Uint8Array.of(3), 'a');
    assert.equal(rings(), 1);
    gate.release();
    assert.equal(rings(), 1, 'release does not ring');
    gate.send(Uint8Array.of(4), 'a');
    gate.send(Uint8Array.of(5), 'a');
    assert.equal(rings(), 2);
  });

  it('copies the packet: the caller may reuse its buffer as soon as send returns', () => {
    const { link, gate } = gated();
    const buf = Uint8Array.of(9, 8, 7, 6);
    gate.send(buf.subarray(1, 3), 'a');
    buf.fill(0);
    gate.send(buf, 'b');
    buf.fill(0xff);
    gate.release();
    assert.deepEqual(link.sent.map((p) => p.bytes), [[8, 7], [0, 0, 0, 0]]);
  });

  it('halt() drops what is held and what comes after, counting it; release() then sends nothing', () => {
    const { link, gate, rings } = gated();
    gate.send(Uint8Array.of(1), 'a');
    gate.release();
    gate.send(Uint8Array.of(2), 'a');
    gate.send(Uint8Array.of(3), 'a');
    gate.halt();
    assert.equal(gate.holding, false);
    assert.deepEqual(gate.counters, { released: 1, dropped: 2 });
    gate.send(Uint8Array.of(4), 'a');
    assert.equal(gate.holding, false);
    gate.release();
    assert.deepEqual(link.sent.map((p) => p.bytes), [[1]]);
    assert.deepEqual(gate.counters, { released: 1, dropped: 3 });
    assert.equal(rings(), 2, 'a halted gate does not ring');
  });

  it('passes received packets to the handler until halted', () => {
    const { link, gate } = gated();
    const got: [number[], LinkAddress][] = [];
    gate.onPacket((p, from) => got.push([[...p], from]));
    link.deliver(Uint8Array.of(1, 2), { ip: '10.0.0.9', port: 1234 });
    link.deliver(Uint8Array.of(3), { ip: '10.0.0.8', port: 4791 });
    assert.deepEqual(got, [[[1, 2], { ip: '10.0.0.9', port: 1234 }], [[3], { ip: '10.0.0.8', port: 4791 }]]);
    gate.halt();
    link.deliver(Uint8Array.of(4), { ip: '10.0.0.9', port: 1234 });
    assert.equal(got.length, 2);
  });

  it('close() closes the link below and drops what is held', async () => {
    const { link, gate } = gated();
    gate.send(Uint8Array.of(1), 'a');
    await gate.close();
    assert.equal(link.closed, 1);
    assert.deepEqual(link.sent, []);
    assert.deepEqual(gate.counters, { released: 0, dropped: 1 });
    gate.send(Uint8Array.of(2), 'a');
    assert.equal(gate.counters.dropped, 2);
  });
});
