// `vrdma qp-shards` as a user runs it: two VMs with their QPs in 3 threads each, checked traffic
// while every QP moves round the shards, a worker shard terminated under traffic and the failed QPs recovered, reported as JSON; bad
// options refused. Needs the native addon (the steering group); addresses 127.0.38.11-12.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { QpShardsReport } from '../../src/demo/qp-shards.js';
import { withNative } from '../native/with-native.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('vrdma qp-shards', () => {
  it('spreads the QPs over 3 threads, survives a worker shard\'s death and recovers its QPs', withNative(async () => {
    const { stdout } = await run(process.execPath, [cli, 'qp-shards', '--json', '--shards', '3', '--qps', '6', '--ops', '120', '--vm-ips', '127.0.38.11,127.0.38.12'], { timeout: 120_000 });
    const r = JSON.parse(stdout.trim()) as QpShardsReport;
    assert.equal(r.verified, true);
    assert.equal(r.shards, 3);
    assert.equal(r.qpMoves, 3 * 12, 'every QP of both VMs moved three times during the traffic');
    assert.deepEqual(r.sender.map((s) => s.qps), [2, 2, 2], 'three moves round three shards: each QP back on the shard its number names');
    for (const s of r.sender) assert.ok(s.packetsSent > 0 && s.packetsReceived > 0, `shard ${s.shard} carried packets`);
    assert.ok(r.kill !== null);
    assert.equal(r.kill.shard, 2);
    assert.equal(r.kill.others, 4 * 120, 'the QPs of the shards that lived completed every WRITE');
    assert.ok(r.kill.flushed > 0, 'the killed shard\'s QPs had work flushed');
    assert.equal(r.kill.afterRecovery, 6 * 100);
  }));

  it('refuses fewer than 2 shards', async () => {
    await assert.rejects(run(process.execPath, [cli, 'qp-shards', '--shards', '1']), (e: { code?: number; stderr?: string }) => e.code !== 0 && /at least 2/.test(e.stderr ?? ''));
  });
});
