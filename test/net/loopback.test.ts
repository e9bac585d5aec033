// The loopback hub and the lossy wrapper: asynchronous delivery with the sender's address,
// closed addresses swallowing packets, and reproducible misbehaviour from a seed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { LoopbackHub } from '../../src/net/loopback.js';
import { LossyLink, seededRandom } from '../../src/net/lossy.js';
import { ROCE_UDP_PORT } from '../../src/nic/link.js';

async function settle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('LoopbackHub', () => {
  it('delivers later, never inside send, with a copy and the source address', async () => {
    const hub = new LoopbackHub();
    const a = hub.attach('127.0.1.5');
    const b = hub.attach('127.0.1.6');
    const got: [number[], string, number][] = [];
    b.onPacket((p, from) => got.push([[...p], from.ip, from.port]));
    const bytes = new Uint8Array([1, 2, 3]);
    a.send(bytes, '127.0.1.6');
    bytes[0] = 9; // the sender may reuse its buffer at once
    assert.equal(got.length, 0, 'no delivery inside send');
    await tick();
    assert.deepEqual(got, [[[1, 2, 3], '127.0.1.5', ROCE_UDP_PORT]]);
    assert.throws(() => hub.attach('127.0.1.6'), /already attached/);
    assert.throws(() => hub.attach('not-an-ip'), RangeError);
  });

  it('loses packets to a closed address, and the address can be attached again (it moved)', async () => {
    const hub = new LoopbackHub();
    const a = hub.attach('127.0.1.5');
    const b = hub.attach('127.0.1.6');
    let count = 0;
    b.onPacket(() => count++);
    a.send(new Uint8Array(4), '127.0.1.6');
    await b.close(); // closed before the packet arrives: it vanishes
    await tick();
    assert.equal(count, 0);
    assert.equal(hub.counters.lost, 1);
    const moved = hub.attach('127.0.1.6');
    let movedCount = 0;
    moved.onPacket(() => movedCount++);
    a.send(new Uint8Array(4), '127.0.1.6');
    await tick();
    assert.equal(movedCount, 1);
    a.send(new Uint8Array(4), '127.0.9.9');
    await tick();
    assert.equal(hub.counters.lost, 2);
  });
});

describe('LossyLink', () => {
  async function run(options: ConstructorParameters<typeof LossyLink>[1], n: number): Promise<number[]> {
    const hub = new LoopbackHub();
    const a = new LossyLink(hub.attach('127.0.1.5'), options);
    const b = hub.attach('127.0.1.6');
    const got: number[] = [];
    b.onPacket((p) => got.push(p[0] | (p[1] << 8)));
    for (let i = 0; i < n; i++) a.send(new Uint8Array([i & 0xff, i >> 8]), '127.0.1.6');
    // Until every delayed or held packet has gone on, then one turn for the hub to deliver.
    while (a.pending > 0) await settle(2);
    await tick();
    await a.close();
    return got;
  }

  it('is transparent at rate 0', async () => {
    assert.deepEqual(await run({}, 100), Array.from({ length: 100 }, (_, i) => i));
  });

  it('drops, duplicates, reorders and delays about the fraction asked, the same way for the same seed', async () => {
    const o = { drop: 0.1, duplicate: 0.1, reorder: 0.1, delay: 0.1, maxDelayMs: 2, seed: 5 };
    const first = await run(o, 2000);
    const second = await run(o, 2000);
    assert.deepEqual(new Set(first), new Set(second), 'the same packets survive for the same seed');
    const unique = new Set(first);
    assert.ok(unique.size > 1600 && unique.size < 1900, `about 10% dropped: ${2000 - unique.size}`);
    assert.ok(first.length - unique.size > 100, 'some duplicated');
    let outOfOrder = 0;
    for (let i = 1; i < first.length; i++) if (first[i] < first[i - 1]) outOfOrder++;
    assert.ok(outOfOrder > 100, 'some reordered or delayed');
  });

  it('refuses fractions outside [0, 1] and gives a reproducible PRNG', () => {
    const hub = new LoopbackHub();
    assert.throws(() => new LossyLink(hub.attach('127.0.1.5'), { drop: 1.5 }), RangeError);
    const r1 = seededRandom(3);
    const r2 = seededRandom(3);
    for (let i = 0; i < 10; i++) assert.equal(r1(), r2());
  });
});
