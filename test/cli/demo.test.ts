// `vrdma demo` end to end: three host processes and two VMs on this suite's loopback block,
// checked traffic both ways, VM1 migrated from host A to host C mid-traffic; the JSON summary says
// the migration happened and the data was verified (exit status 0), the metrics endpoint serves
// per-QP and per-device counters while it runs and its migration phase and dirty pages gauges
// move, and the HTML report it writes renders in headless Chromium with the chart and the
// migration's phases in it.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { DemoSummary } from '../../src/demo/summary.js';
import { dumpDom } from '../demo/chromium.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ADDRS = ['--host-ips', '127.0.27.51,127.0.27.52,127.0.27.53', '--vm-ips', '127.0.27.61,127.0.27.62'];
const METRICS = { host: '127.0.27.70', port: 9464 };

async function scrape(url: string, until: (text: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      last = await res.text();
      if (res.ok && until(last)) return last;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no good scrape of ${url} within ${timeoutMs} ms; last:\n${last.slice(0, 2000)}`);
}

/** The value of the first sample of `name` whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('vrdma demo', { timeout: 120_000 }, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vrdma-demo-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the data, serves metrics while it runs and writes a report that renders', async () => {
    const report = join(dir, 'report.html');
    const child = spawn(process.execPath, [cli, 'demo', '--json', '--duration', '4', '--qps', '4', '--report', report,
      '--metrics-host', METRICS.host, '--metrics-port', String(METRICS.port), ...ADDRS], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

    const url = `http://${METRICS.host}:${METRICS.port}/metrics`;
    const text = await scrape(url, (t) => (sample(t, 'vrdma_qp_completions_total', { host: 'B', vm: 'vm2', status: 'Success' }) ?? 0) > 0, 30_000);
    for (const name of ['vrdma_qp_packets_sent_total', 'vrdma_qp_bytes_received_total', 'vrdma_qp_retransmitted_packets_total', 'vrdma_qp_rnr_naks_received_total']) {
      for (const host of ['A', 'B']) assert.ok(sample(text, name, { host }) !== undefined, `${name} for host ${host}`);
    }
    assert.ok((sample(text, 'vrdma_device_packets_sent_total', { host: 'A', vm: 'vm1' }) ?? 0) > 0);
    assert.equal(sample(text, 'vrdma_migration_phase', { host: 'A', vm: 'vm1', phase: 'none' }), 1);
    assert.ok(sample(text, 'vrdma_dirty_pages', { host: 'B', vm: 'vm2' }) !== undefined);
    const qpSeries = text.split('\n').filter((l) => l.startsWith('vrdma_qp_packets_sent_total{') && l.includes('host="A"'));
    assert.equal(qpSeries.length, 4, 'one series per QP');
    assert.equal((await fetch(`http://${METRICS.host}:${METRICS.port}/other`)).status, 404);
    // The migration: A's VM1 leaves (its phase says so, its last harvest is in the gauge) and
    // C's runs, its counters carried on from A's.
    // (C resumes VM1 before A hears it confirmed: wait for both.)
    const phase = (t: string, host: string, p: string) => sample(t, 'vrdma_migration_phase', { host, vm: 'vm1', phase: p }) === 1;
    const moved = await scrape(url, (t) => phase(t, 'C', 'resumed') && phase(t, 'A', 'migrated-out'), 30_000);
    // The gauge holds the last pre-copy harvest: the final round sends those pages and what the
    // guest dirtied after (a guest that happened to write nothing in that window harvests 0).
    const lastHarvest = sample(moved, 'vrdma_dirty_pages', { host: 'A', vm: 'vm1' });
    assert.ok(lastHarvest !== undefined, "A's last harvest is in the gauge");
    assert.ok((sample(moved, 'vrdma_device_packets_sent_total', { host: 'C', vm: 'vm1' }) ?? 0) >= (sample(text, 'vrdma_device_packets_sent_total', { host: 'A', vm: 'vm1' }) ?? 0));

    assert.equal(await exited, 0, stderr);
    const summary = JSON.parse(stdout.trim()) as DemoSummary;
    assert.equal(summary.verified, true, summary.problems.join('\n'));
    assert.deepEqual(summary.problems, []);
    assert.equal(summary.settings.qps, 4);
    assert.ok(summary.vms.every((v) => v.opsCompleted > 0 && v.qpns.length === 4));
    assert.ok((summary.throughputMBps.before ?? 0) > 0);
    assert.ok(summary.bytesVerified > 0);
    const m = summary.migration;
    assert.ok(m !== null, summary.migrationNote);
    assert.equal(m.from, 'A');
    assert.equal(m.to, 'C');
    assert.ok(m.pagesPerRound.length >= 2 && lastHarvest <= m.pagesPerRound.at(-1)!, `last harvest ${lastHarvest}, rounds ${m.pagesPerRound.join(' ')}`);
    assert.deepEqual(summary.vms.map((v) => v.endedOn), ['C', 'B']);
    // The hosts ran the demo's default 2 workers: each VM ran in one of its host's threads.
    assert.equal(summary.settings.workers, 2);
    assert.deepEqual(summary.vms.map((v) => v.threads.map((t) => t.split('/')[0])), [['A', 'C'], ['B']]);
    assert.ok(summary.vms.every((v) => v.threads.every((t) => /^[ABC]\/\d+$/.test(t))), JSON.stringify(summary.vms));
    assert.ok(m.rounds >= 2 && m.pagesPerRound.length === m.rounds);
    assert.ok(m.downtimeMs > 0 && m.totalMs > m.downtimeMs);
    assert.ok(m.qpBlackoutP50Ms !== null && m.qpBlackoutP99Ms !== null && m.qpBlackoutP99Ms >= m.qpBlackoutP50Ms);
    assert.ok(summary.throughputMBps.during !== null && summary.throughputMBps.after !== null);

    const dom = await dumpDom(report);
    assert.match(/<body([^>]*)>/.exec(dom)?.[1] ?? '', /data-rendered="yes"/);
    assert.match(dom, /<polyline id="throughput-line"/);
    for (const phase of ['before', 'precopy', 'switchover', 'after']) assert.match(dom, new RegExp(`data-phase="${phase}"`), phase);
    assert.match(dom, /data verified yes/);
  });

  it("runs on durable device backends with --durable: verified, migrated, VM2 captured on its host's main thread", async () => {
    const addrs = ['--host-ips', '127.0.27.81,127.0.27.82,127.0.27.83', '--vm-ips', '127.0.27.84,127.0.27.85'];
    const pcap = join(dir, 'durable.pcap');
    const { stdout } = await run(process.execPath, [cli, 'demo', '--durable', '--json', '--duration', '3', '--qps', '2', '--capture', pcap, ...addrs], { timeout: 120_000 });
    const summary = JSON.parse(stdout.trim()) as DemoSummary;
    assert.equal(summary.verified, true, summary.problems.join('\n'));
    assert.equal(summary.settings.durable, true);
    assert.deepEqual(summary.vms.map((v) => v.endedOn), ['C', 'B']);
    assert.ok(summary.migration !== null && summary.migration.downtimeMs > 0, summary.migrationNote);
    assert.ok(summary.vms.every((v) => v.opsCompleted > 0));
    // Every frame of VM2's capture parses and its ICRC checks out.
    const frames = (await run(process.execPath, [cli, 'pcap-check', pcap], { maxBuffer: 256 << 20 })).stdout.trim().split('\n').map((l) => JSON.parse(l) as { icrcOk?: boolean });
    assert.ok(frames.length > 100, `${frames.length} frames`);
    assert.ok(frames.every((f) => f.icrcOk === true), 'pcap-check exits 0 only when every ICRC checks out');
  });

  it('has --help on every subcommand', async () => {
    for (const sub of ['demo', 'host', 'ring-pump', 'pingpong', 'pcap-check', 'bench']) {
      const { stdout } = await run(process.execPath, [cli, sub, '--help']);
      assert.match(stdout, new RegExp(`Usage: vrdma ${sub}`));
    }
    const { stdout } = await run(process.execPath, [cli, 'demo', '--help']);
    for (const flag of ['--workers', '--durable', '--mtu', '--loss', '--qps', '--message-size', '--duration', '--capture', '--log-level', '--metrics-port', '--report', '--json']) {
      assert.ok(stdout.includes(flag), flag);
    }
  });

  it('refuses bad flags with a clear message', async () => {
    for (const [flag, value, why] of [['--loss', '2', /fraction/], ['--mtu', '1000', /4096/], ['--log-level', 'loud', /expected one of/], ['--vm-ips', '1.2.3.4', /2 comma-separated/]] as const) {
      await assert.rejects(run(process.execPath, [cli, 'demo', flag, value]), (err: { code: number; stderr: string }) => {
        assert.notEqual(err.code, 0);
        assert.match(err.stderr, why);
        return true;
      });
    }
  });

  it('says how to start a host process when run from a shell', async () => {
    await assert.rejects(run(process.execPath, [cli, 'host']), (err: { code: number; stderr: string }) => err.code === 2 && /IPC channel/.test(err.stderr));
  });
});
