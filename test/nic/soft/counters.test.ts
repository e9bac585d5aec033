// SoftRoce's transport event counters (SoftRoceCounters.events): a clean transfer counts none,
// and one lost request packet in the middle of a WRITE costs exactly one sequence NAK and one
// go-back-N of the packets after it, with no local ACK timeout; and a packet overtaken by the
// next one is held and executed in order, costing no NAK and no go-back-N at all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Link, PacketHandler } from '../../../src/nic/link.js';
import { PathMtu, WrOpcode } from '../../../src/nic/types.js';
import { BUF_IOVA, assertOk, closeAll, completions, connectRc, fill, pair, pattern } from './fixtures.js';

const SQ_PSN = 0x1000;
const PACKETS = 10;

/** Drops (or, with `swap`, sends after the next packet) the first packet with the given PSN. */
class DropOnce implements Link {
  dropped = 0;
  private held: { packet: Uint8Array; dstIp: string; dstPort?: number } | null = null;
  constructor(private readonly inner: Link, private readonly psn: number, private readonly swap = false) {}
  get localIp(): string {
    return this.inner.localIp;
  }
  get localPort(): number {
    return this.inner.localPort;
  }
  send(packet: Uint8Array, dstIp: string, dstPort?: number): void {
    const psn = (packet[9] << 16) | (packet[10] << 8) | packet[11];
    if (this.dropped === 0 && psn === this.psn) {
      this.dropped++;
      if (this.swap) this.held = { packet: packet.slice(), dstIp, dstPort };
      return;
    }
    this.inner.send(packet, dstIp, dstPort);
    const held = this.held;
    this.held = null;
    if (held !== null) this.inner.send(held.packet, held.dstIp, held.dstPort);
  }
  onPacket(handler: PacketHandler): void {
    this.inner.onPacket(handler);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function writeOnce(dropPsn: number | null, swap = false): Promise<{ a: Map<string, number>; b: Map<string, number>; dropped: number }> {
  let dropper: DropOnce | null = null;
  const wrap = (l: Link): Link => (dropPsn === null ? l : (dropper = new DropOnce(l, dropPsn, swap)));
  const { a, b } = pair({ wrap }, {});
  // timeout 18 is about 1 s: a loss here must be repaired by the NAK, never by the timer.
  const [qa] = connectRc(a, b, { mtu: PathMtu.Mtu1024, timeout: 18 });
  const len = PACKETS * 1024;
  fill(a, 0, pattern(len, 3));
  a.dev.postSend(qa, [{ wrId: 1n, opcode: WrOpcode.RdmaWrite, flags: 0, sgList: [{ addr: BUF_IOVA, length: len, lkey: a.mr.lkey }], remoteAddr: BUF_IOVA, rkey: b.mr.rkey }]);
  assertOk(await completions(a, 1));
  const result = { a: new Map(a.dev.counters.events), b: new Map(b.dev.counters.events), dropped: (dropper as DropOnce | null)?.dropped ?? 0 };
  await closeAll(a, b);
  return result;
}

describe('SoftRoce transport event counters', () => {
  it('count nothing for a transfer without loss', async () => {
    const r = await writeOnce(null);
    assert.deepEqual([...r.a], []);
    assert.deepEqual([...r.b], []);
  });

  it('count one sequence NAK and one go-back-N of the rest for one lost packet', async () => {
    const r = await writeOnce(SQ_PSN + 2);
    assert.equal(r.dropped, 1);
    assert.equal(r.b.get('sequence NAK sent'), 1);
    assert.equal(r.a.get('sequence NAK received'), 1);
    assert.equal(r.a.get('go-back-N'), 1);
    assert.equal(r.a.get('PSNs rewound'), PACKETS - 2, 'everything from the lost PSN on is resent');
    assert.equal(r.a.get('local ACK timeout'), undefined);
  });

  it('count no NAK and no go-back-N for a packet overtaken by the next one', async () => {
    const r = await writeOnce(SQ_PSN + 2, true);
    assert.equal(r.dropped, 1);
    assert.equal(r.b.get('out-of-order request held'), 1);
    assert.equal(r.b.get('sequence NAK sent'), undefined);
    assert.equal(r.b.get('duplicate request'), undefined);
    assert.deepEqual([...r.a], [], 'the requester saw nothing go wrong');
  });
});
