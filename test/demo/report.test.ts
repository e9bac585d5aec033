// The HTML report: self-contained (no external resources), the chart drawn from the samples with
// every phase shaded, the summary table, and — rendered in headless Chromium — laid out by a
// browser (its script measured the drawn line and marked the page rendered).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { escapeHtml, renderReport } from '../../src/demo/report.js';
import type { DemoSummary, PhaseSpan, ThroughputSample } from '../../src/demo/summary.js';
import { dumpDom } from './chromium.js';

function example(): { summary: DemoSummary; samples: ThroughputSample[]; phases: PhaseSpan[] } {
  const phases: PhaseSpan[] = [
    { phase: 'before', startMs: 0, endMs: 4000 }, { phase: 'precopy', startMs: 4000, endMs: 5200 },
    { phase: 'switchover', startMs: 5200, endMs: 5300 }, { phase: 'after', startMs: 5300, endMs: 10_000 },
  ];
  const samples = Array.from({ length: 100 }, (_, i): ThroughputSample => {
    const tMs = (i + 1) * 100;
    const phase = phases.find((p) => tMs > p.startMs && tMs <= p.endMs)?.phase ?? 'after';
    return { tMs, bytesPerSec: phase === 'switchover' ? 0 : 20e6 + (i % 7) * 1e6, phase };
  });
  const summary: DemoSummary = {
    demo: 'live-migration', verified: true, problems: [], hosts: [{ name: 'A', ip: '127.0.0.2' }], elapsedMs: 11_000,
    vms: [{ name: 'vm1', ip: '127.0.1.1', startedOn: 'A', endedOn: 'C', qpns: [16], opsCompleted: 1000, threads: ['A/1', 'C/2'] }],
    settings: { qps: 8, messageBytes: 4096, mtu: 4096, loss: 0, workers: 2, durationMs: 10_000, window: 4 },
    throughputMBps: { before: 22.1, during: 15, after: 22.3 },
    migration: {
      from: 'A', to: 'C', rounds: 3, pagesPerRound: [8192, 300, 20], stopReason: 'converged', bytesMoved: 35e6, deviceStateBytes: 40_000, totalMs: 1300,
      downtimeMs: 80, switchoverMs: 70, qpBlackoutP50Ms: 60, qpBlackoutP99Ms: 75, qpsWithoutCompletion: 0,
      phasesMs: { previewMs: 9, vetMs: 20, pauseMs: 0.5, suspendMs: 0.2, saveMs: 12, finalPagesMs: 2, stateSendMs: 1, releaseMs: 0.4, restoreMs: 40, resumeMs: 2 },
    },
    migrationNote: '', retransmissions: 12, rnrNaks: 40, bytesVerified: 6e6,
  };
  return { summary, samples, phases };
}

describe('demo HTML report', () => {
  it('is self-contained and carries the chart and the summary', () => {
    const { summary, samples, phases } = example();
    const html = renderReport({ ...summary, problems: ['vm1: <script>alert(1)</script>'] }, samples, phases);
    assert.doesNotMatch(html, /\b(src|href)\s*=/i, 'no external resources');
    assert.doesNotMatch(html, /<script>alert/);
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    const points = /<polyline id="throughput-line" points="([^"]*)"/.exec(html)?.[1].split(' ') ?? [];
    assert.equal(points.length, samples.length);
    assert.deepEqual([...html.matchAll(/data-phase="(\w+)"/g)].map((m) => m[1]), ['before', 'precopy', 'switchover', 'after']);
    assert.match(html, /<th scope="row">downtime<\/th><td>80 ms<\/td>/);
    assert.match(html, /<th scope="row">data verified<\/th><td>yes<\/td>/);
    assert.match(html, /<th scope="row">worker threads<\/th><td>2 per host; vm1 in A thread 1 then C thread 2<\/td>/);
    assert.match(html, /<th scope="row">switchover steps<\/th><td>pause 0.5, suspend 0.2, save 12, last pages 2, states 1, release 0.4, restore 40, resume 2 ms<\/td>/);
  });

  it('escapes text', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('renders in headless Chromium with the chart laid out', { timeout: 90_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vrdma-report-'));
    try {
      const { summary, samples, phases } = example();
      const file = join(dir, 'report.html');
      await writeFile(file, renderReport(summary, samples, phases));
      const dom = await dumpDom(file);
      const body = /<body([^>]*)>/.exec(dom)?.[1] ?? '';
      assert.match(body, /data-rendered="yes"/, 'the page script ran');
      assert.match(body, /data-phases="4"/);
      const width = Number(/data-chart-width="(\d+)"/.exec(body)?.[1]);
      assert.ok(width > 700, `the throughput line spans the plot (${width} px)`);
      assert.match(dom, /<svg id="throughput-chart"/);
      assert.match(dom, /<table id="summary">/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
