import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('vrdma ring-pump', () => {
  it('runs the ring pump over both formats and reports verified data as JSON', async () => {
    const { stdout } = await run(process.execPath, [cli, 'ring-pump', '--json', '--buffers', '20000', '--queue-size', '64']);
    const summary = JSON.parse(stdout.trim()) as { verified: boolean; rings: { format: string; buffers: number }[] };
    assert.equal(summary.verified, true);
    assert.deepEqual(summary.rings.map((r) => [r.format, r.buffers]), [['split', 20000], ['packed', 20000]]);
  });

  it('refuses bad options with a clear message and a non-zero status', async () => {
    await assert.rejects(run(process.execPath, [cli, 'ring-pump', '--buffers', '-3']), (err: { code: number; stderr: string }) => {
      assert.notEqual(err.code, 0);
      assert.match(err.stderr, /positive integer/);
      return true;
    });
  });

  it('fails, not hangs, when the ring cannot be built', async () => {
    await assert.rejects(run(process.execPath, [cli, 'ring-pump', '--json', '--buffers', '10', '--queue-size', '3']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /split ring: FAILED/);
      return true;
    });
  });
});
