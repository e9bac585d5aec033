// `vrdma worker-crash` as a user runs it: traffic through durable backends whose workers are
// terminated, reported verified as JSON; bad options refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { WorkerCrashReport } from '../../src/demo/worker-crash.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('vrdma worker-crash', () => {
  it('keeps checked traffic through two worker deaths and reports each device back from its journal', async () => {
    const { stdout } = await run(process.execPath, [cli, 'worker-crash', '--json', '--qps', '4', '--ops', '100', '--kills', '2', '--vm-ips', '127.0.37.11,127.0.37.12'], { timeout: 120_000 });
    const r = JSON.parse(stdout.trim()) as WorkerCrashReport;
    assert.equal(r.verified, true);
    assert.equal(r.socket, 'main', "the pool's thread holds the sockets by default");
    assert.equal(r.rings, 'split', 'split rings by default');
    assert.equal(r.completions, 400);
    assert.equal(r.receives, 200);
    assert.equal(r.kills.length, 2);
    assert.deepEqual(r.kills.map((k) => k.device), ['127.0.37.11', '127.0.37.12']);
    // Each kill takes down the victim's device, and any other device sharing its worker.
    for (const ip of ['127.0.37.11', '127.0.37.12']) assert.ok(r.outages.some((o) => o.device === ip), `${ip} came back`);
    for (const o of r.outages) assert.notEqual(o.restoredOn, o.thread, 'restored on another thread');
    assert.ok(r.outages.every((o) => o.bindMs < 1), 'nothing was bound again');
  });

  it('does the same with the guests on packed rings', async () => {
    const { stdout } = await run(process.execPath, [cli, 'worker-crash', '--json', '--rings', 'packed', '--qps', '4', '--ops', '100', '--kills', '2', '--vm-ips', '127.0.37.13,127.0.37.14'], { timeout: 120_000 });
    const r = JSON.parse(stdout.trim()) as WorkerCrashReport;
    assert.equal(r.verified, true);
    assert.equal(r.rings, 'packed');
    assert.equal(r.completions, 400);
    assert.equal(r.receives, 200);
    assert.equal(r.kills.length, 2);
    for (const ip of ['127.0.37.13', '127.0.37.14']) assert.ok(r.outages.some((o) => o.device === ip), `${ip} came back`);
  });

  it('refuses bad options with a clear message and a non-zero status', async () => {
    await assert.rejects(run(process.execPath, [cli, 'worker-crash', '--vm-ips', '127.0.0.1']), (err: { code: number; stderr: string }) => {
      assert.notEqual(err.code, 0);
      assert.match(err.stderr, /2 comma-separated IPv4 addresses/);
      return true;
    });
    await assert.rejects(run(process.execPath, [cli, 'worker-crash', '--rings', 'ring']), (err: { code: number; stderr: string }) => {
      assert.notEqual(err.code, 0);
      assert.match(err.stderr, /expected split or packed/);
      return true;
    });
  });
});
