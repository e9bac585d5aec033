import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { PcapFileReader } from '../../src/net/pcap-reader.js';
import { PcapWriter } from '../../src/net/pcap-writer.js';
import { readPcap } from '../../src/nic/roce/pcap.js';

const dir = mkdtempSync(join(tmpdir(), 'vrdma-pcap-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `${n++}.pcap`);

function readAll(path: string): { timeNs: bigint; data: Uint8Array; wireBytes: number }[] {
  const r = PcapFileReader.open(path);
  const out = [];
  try {
    for (let rec = r.next(); rec !== null; rec = r.next()) out.push({ ...rec, data: rec.data.slice() });
  } finally {
    r.close();
  }
  return out;
}

describe('PcapWriter and PcapFileReader', () => {
  it('write records that both readers read back, timestamps to the microsecond', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ us: fc.bigInt({ min: 0n, max: 2n ** 40n }), data: fc.uint8Array({ maxLength: 3000 }) }), { maxLength: 60 }),
        async (recs) => {
          const path = fresh();
          const w = await PcapWriter.create(path, { chunkBytes: 1 << 16, maxBufferedBytes: 1 << 22, snapBytes: 2048 });
          for (const r of recs) assert.equal(w.write(r.data, r.us * 1000n), true);
          await w.close();
          const want = recs.map((r) => ({ timeNs: r.us * 1000n, data: r.data.subarray(0, 2048), wireBytes: r.data.length }));
          assert.deepEqual(readAll(path), want);
          assert.deepEqual(readPcap(new Uint8Array(readFileSync(path))), want, 'the wire layer reads it too');
          assert.equal(w.counters().bytesWritten, readFileSync(path).length);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('drops and counts records past its buffer limit instead of growing, and keeps the rest whole', async () => {
    const path = fresh();
    const w = await PcapWriter.create(path, { snapBytes: 1000, chunkBytes: 1016, maxBufferedBytes: 4 * 1016, flushIntervalMs: 0 });
    const frame = new Uint8Array(1000).fill(7);
    // No write completes while this loop runs, so only four chunks' worth can wait in memory.
    let kept = 0;
    for (let i = 0; i < 100; i++) if (w.write(frame, BigInt(i) * 1000n)) kept++;
    const { records, dropped } = w.counters();
    assert.deepEqual([records, dropped], [kept, 100 - kept]);
    assert.ok(kept >= 1 && kept < 5, `kept ${kept}`);
    await w.close();
    assert.equal(readAll(path).length, kept);
    assert.equal(w.write(frame), false, 'closed');
  });

  it('flush puts buffered records in the file while it stays open', async () => {
    const path = fresh();
    const w = await PcapWriter.create(path, { flushIntervalMs: 0 });
    w.write(Uint8Array.of(1, 2, 3), 5_000_000_000n);
    await w.flush();
    assert.deepEqual(readAll(path).map((r) => [r.timeNs, [...r.data]]), [[5_000_000_000n, [1, 2, 3]]]);
    await w.close();
  });
});
