// The progress display: plain lines when the output is not a terminal (one per phase change and
// at most one a second), a redrawn line on a terminal.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { Progress, describe as describeState } from '../../src/demo/progress.js';

function capture(isTTY: boolean): { out: PassThrough & { isTTY?: boolean; columns?: number }; text: () => string } {
  const out = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  out.isTTY = isTTY;
  out.columns = 80;
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { out, text: () => chunks.join('') };
}

describe('demo progress display', () => {
  it('falls back to plain lines when not a terminal', () => {
    const { out, text } = capture(false);
    const p = new Progress({ out });
    p.update({ phase: 'before', elapsedMs: 100, bytesPerSec: 1e6 });
    p.update({ phase: 'before', elapsedMs: 600, bytesPerSec: 2e6 });
    p.update({ phase: 'before', elapsedMs: 1200, bytesPerSec: 3e6 });
    p.update({ phase: 'precopy', elapsedMs: 1300, bytesPerSec: 1e6, round: 2, pagesLeft: 150 });
    p.note('migrated');
    p.done();
    const lines = text().split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 4);
    assert.ok(!text().includes("\r") && !text().includes("\x1b"), "no terminal control characters");
    assert.match(lines[2], /precopy .* round 2 {2}150 pages left/);
    assert.equal(lines[3], 'migrated');
  });

  it('redraws one line on a terminal', () => {
    const { out, text } = capture(true);
    const p = new Progress({ out });
    p.update({ phase: 'before', elapsedMs: 100, bytesPerSec: 1e6 });
    p.update({ phase: 'before', elapsedMs: 200, bytesPerSec: 1e6 });
    p.done();
    assert.equal(text().split('\r\x1b[2K').length, 3);
    assert.ok(text().endsWith('\n'));
    assert.match(describeState({ phase: 'after', elapsedMs: 1500, bytesPerSec: 12.34e6 }), /^\[ +1\.5 s\] {2}after +12\.3 MB\/s$/);
  });
});
