// `npm run bench -- scaling`: what a host pool's worker threads buy (src/host/pool). Two VM pairs in
// one host, each pair an RDMA WRITE stream (write-stream.ts: one RC QP, 64 WRITEs in flight) over
// real UDP on loopback, all four VMs' data paths in the same process:
//
//   inline    every VM on the main thread (a host agent, no pool): the baseline
//   pool-N    the VMs spread over N worker threads, each VM's socket in its worker (the default),
//             the main thread routing control calls only
//   pool-N-main-socket   the same with the VMs' sockets held by the main thread (socket 'main':
//             datagrams cross to the workers through packet rings in shared memory)
//
// Writers are opened first, so with 2 workers each worker holds one writer and one target. Rows
// give the message rate and goodput summed over both streams, the CPU the process used (cores),
// and the ratio to one worker with the same socket holder. Then the pool's overhead on the control
// path (a status call answered through a worker's port against the same call made directly), what
// one datagram's crossing to a worker and back through the packet rings costs against a direct
// call (ring-hop.ts: the data path's overhead per crossing with socket 'main'), and what moving a
// VM between workers costs (moveVm: live migration inside the host, with checked traffic running).
//
// This machine's speed drifts by half from one minute to the next, which makes a ratio of two rows
// measured a minute apart unreliable. So the two-workers-over-one ratio is also measured in paired
// rounds: a one-worker pool and a two-worker pool stay open side by side, the same streams run on
// each in turn, and each round's ratio is taken from two runs a second apart ('pool-2/pool-1').
// Last, the same question at QP grain: one VM's QPs over two threads against one (qp-shards.ts).
import type { BenchRow } from './harness.js';
import { HostAgent, type WorkloadEndpoint, agentOps, ramBytesFor } from '../src/host/agent.js';
import { DEFAULT_WORKLOAD, type WorkloadConfig } from '../src/workload/config.js';
import { HostPool } from '../src/host/pool/host-pool.js';
import type { StreamEndpoint, StreamRun } from '../src/host/write-stream.js';
import { createLogger } from '../src/observe/log.js';
import { ringHopRows } from './ring-hop.js';
import { qpShardRows } from './qp-shards.js';

const SUITE = 'scaling';
const PAIRS = 2;
const WINDOW = 64;
const RUN_MS = 2000;
const WARMUP_MS = 300;
const RAM = 24 << 20;
const STREAM_BYTES = 4 << 20;
const SIZES = [64, 4096];
const ENGINES = ['inline', 'pool-1', 'pool-2', 'pool-4', 'pool-1-main-socket', 'pool-2-main-socket'] as const;
const CALLS = 2000;

type Engine = (typeof ENGINES)[number];

/** The host's operations, whether its VMs run inline or in a pool. */
interface Host {
  open(name: string, ip: string): Promise<unknown>;
  call<T>(vm: string, op: string, args?: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

const log = createLogger('warn');

/** The VMs on this thread: the agent's own op table, called directly. */
function inlineHost(): Host {
  const agent = new HostAgent('bench', log, () => {});
  const ops = agentOps(agent, () => agent.close());
  return {
    open: (name, ip) => agent.openVm({ name, ip, ramBytes: RAM }),
    call: async <T>(vm: string, op: string, a: Record<string, unknown> = {}) => (await ops[op]({ vm, ...a })) as T,
    close: () => agent.close(),
  };
}

function poolHost(workers: number, socket: 'main' | 'worker'): Host {
  const pool = new HostPool({ host: 'bench', workers, socket, logLevel: 'warn', log, emit: () => {} });
  return {
    open: (name, ip) => pool.openVm({ name, ip, ramBytes: RAM }),
    call: <T>(vm: string, op: string, a: Record<string, unknown> = {}) => pool.call<T>(vm, op, { vm, ...a }),
    close: () => pool.close(),
  };
}

/** Open the pairs (writers first), connect their streams; returns the writers' names. */
async function streams(host: Host, base: number): Promise<string[]> {
  const writers = Array.from({ length: PAIRS }, (_, p) => `w${p}`);
  const targets = Array.from({ length: PAIRS }, (_, p) => `t${p}`);
  for (let p = 0; p < PAIRS; p++) await host.open(writers[p], `127.0.42.${base + 2 * p}`);
  for (let p = 0; p < PAIRS; p++) await host.open(targets[p], `127.0.42.${base + 2 * p + 1}`);
  for (let p = 0; p < PAIRS; p++) {
    const [ew, et] = await Promise.all([
      host.call<StreamEndpoint>(writers[p], 'setupStream', { bytes: STREAM_BYTES }),
      host.call<StreamEndpoint>(targets[p], 'setupStream', { bytes: STREAM_BYTES }),
    ]);
    await Promise.all([host.call(writers[p], 'connectStream', { peer: et, mtu: 4096 }), host.call(targets[p], 'connectStream', { peer: ew, mtu: 4096 })]);
  }
  return writers;
}

async function runAll(host: Host, writers: string[], size: number, ms: number): Promise<StreamRun[]> {
  return Promise.all(writers.map((w) => host.call<StreamRun>(w, 'runStream', { size, window: WINDOW, durationMs: ms })));
}

async function measure(engine: Engine, base: number): Promise<BenchRow[]> {
  const host = engine === 'inline' ? inlineHost() : poolHost(Number(engine.split('-')[1]), engine.endsWith('-main-socket') ? 'main' : 'worker');
  const rows: BenchRow[] = [];
  try {
    const writers = await streams(host, base);
    for (const size of SIZES) {
      await runAll(host, writers, size, WARMUP_MS);
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const runs = await runAll(host, writers, size, RUN_MS);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const rate = runs.reduce((sum, r) => sum + r.messages / r.seconds, 0);
      rows.push({
        suite: SUITE, name: `rdma write ${size} B, ${PAIRS} streams`, engine, unit: 'message', opsPerSec: rate,
        gbitPerSec: Number(((rate * size * 8) / 1e9).toFixed(3)), window: WINDOW, cpuCores: Number(((cpu.user + cpu.system) / 1000 / wall).toFixed(2)),
      });
    }
    rows.push(await callOverhead(host, engine));
  } finally {
    await host.close();
  }
  return rows;
}

/** Sequential status calls to one VM: through the pool's port, or a direct call inline. */
async function callOverhead(host: Host, engine: Engine): Promise<BenchRow> {
  for (let i = 0; i < 200; i++) await host.call('t0', 'status');
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) await host.call('t0', 'status');
  const us = ((performance.now() - t0) * 1000) / CALLS;
  return { suite: SUITE, name: 'control call (VM status)', engine, unit: 'call', opsPerSec: 1e6 / us, usPerCall: Number(us.toFixed(2)) };
}

/** Each row's rate over pool-1's for the same name and socket holder (inline: over pool-1). */
function ratios(rows: BenchRow[]): BenchRow[] {
  return rows.map((row) => {
    const one = row.engine.endsWith('-main-socket') ? 'pool-1-main-socket' : 'pool-1';
    const base = rows.find((r) => r.name === row.name && r.engine === one);
    return base && base.opsPerSec > 0 && row.unit === 'message' ? { ...row, vs_pool1: Number((row.opsPerSec / base.opsPerSec).toFixed(2)) } : row;
  });
}

/**
 * Two VMs with the checked workload between them in one worker of two; move one to the other
 * (with the sockets in the workers, or on the main thread: then the address moves between two of
 * its socket sides).
 */
async function moveCost(socket: 'worker' | 'main'): Promise<BenchRow> {
  const pool = new HostPool({ host: 'bench', workers: 2, socket, logLevel: 'warn', log, emit: () => {} });
  try {
    const config: WorkloadConfig = { ...DEFAULT_WORKLOAD, qps: 8, messageBytes: 1024 };
    const ram = ramBytesFor(config);
    // x takes the second worker, so a and b share the first; closing x leaves that one empty.
    for (const [name, ip] of [['a', '127.0.42.61'], ['x', '127.0.42.62'], ['b', '127.0.42.63']] as const) await pool.openVm({ name, ip, ramBytes: ram });
    await pool.closeVm('x');
    const [ea, eb] = await Promise.all([
      pool.call<WorkloadEndpoint>('a', 'setupWorkload', { vm: 'a', config, side: 0 }),
      pool.call<WorkloadEndpoint>('b', 'setupWorkload', { vm: 'b', config, side: 1 }),
    ]);
    await Promise.all([pool.call('a', 'connect', { vm: 'a', mine: ea, peer: eb, mtu: 4096 }), pool.call('b', 'connect', { vm: 'b', mine: eb, peer: ea, mtu: 4096 })]);
    await Promise.all([pool.call('a', 'start', { vm: 'a' }), pool.call('b', 'start', { vm: 'b' })]);
    await new Promise((r) => setTimeout(r, 1000));
    const moved = await pool.moveVm('a', { blackoutWatchMs: 2000 });
    if (moved === null) throw new Error('moveVm found no other worker');
    const r = moved.report;
    const [opsA, opsB] = await Promise.all([pool.call<number[]>('a', 'drain', { vm: 'a' }), pool.call<number[]>('b', 'drain', { vm: 'b' })]);
    await Promise.all([pool.call('a', 'settle', { vm: 'a', peerOps: opsB }), pool.call('b', 'settle', { vm: 'b', peerOps: opsA })]);
    const verified = (await pool.call<{ ok: boolean }>('a', 'verify', { vm: 'a', peerOps: opsB })).ok && (await pool.call<{ ok: boolean }>('b', 'verify', { vm: 'b', peerOps: opsA })).ok;
    return {
      suite: SUITE, name: 'moveVm: a VM with 8 busy RC QPs to the other worker', engine: socket === 'main' ? 'pool-2-main-socket' : 'pool-2', unit: 'move', opsPerSec: 1000 / r.totalMs,
      totalMs: round(r.totalMs), downtimeMs: round(r.downtimeMs), blackoutP50Ms: round(r.blackout.p50Ms ?? -1), blackoutP99Ms: round(r.blackout.p99Ms ?? -1),
      rounds: r.rounds.length, verified,
    };
  } finally {
    await pool.close();
  }
}

const round = (x: number) => Number(x.toFixed(3));

const PAIRED_ROUNDS = 7;
const PAIRED_MS = 800;

/** Messages a pool's streams completed, and the seconds they took. */
interface Round {
  messages: number;
  seconds: number;
}

const rateOf = (x: Round): number => x.messages / x.seconds;

const add = (sum: Round, x: Round): void => {
  sum.messages += x.messages;
  sum.seconds += x.seconds;
};

/**
 * The two-workers-over-one ratio from paired rounds: both pools open at once (their workers idle
 * while the other runs), each round running the streams on one pool, then on the other, in
 * alternating order. A row per size: each pool's rate over all its rounds (messages over seconds,
 * so a garbage collection that falls in some rounds counts as it would in one long run), their
 * ratio, and the range of the rounds' own ratios.
 */
async function pairedRatio(): Promise<BenchRow[]> {
  const one = poolHost(1, 'worker');
  const two = poolHost(2, 'worker');
  const rows: BenchRow[] = [];
  try {
    const w1 = await streams(one, 81);
    const w2 = await streams(two, 89);
    /** One round's streams on `host`: their messages summed, and their seconds averaged. */
    const run = async (host: Host, writers: string[], size: number): Promise<Round> => {
      const runs = await runAll(host, writers, size, PAIRED_MS);
      return { messages: runs.reduce((n, r) => n + r.messages, 0), seconds: runs.reduce((t, r) => t + r.seconds, 0) / runs.length };
    };
    for (const size of SIZES) {
      await runAll(one, w1, size, WARMUP_MS);
      await runAll(two, w2, size, WARMUP_MS);
      const total1 = { messages: 0, seconds: 0 };
      const total2 = { messages: 0, seconds: 0 };
      const ratios: number[] = [];
      for (let r = 0; r < PAIRED_ROUNDS; r++) {
        // Alternate which pool runs first, so a drift within a round favours neither.
        let r1: Round;
        let r2: Round;
        if (r % 2 === 0) {
          r1 = await run(one, w1, size);
          r2 = await run(two, w2, size);
        } else {
          r2 = await run(two, w2, size);
          r1 = await run(one, w1, size);
        }
        add(total1, r1);
        add(total2, r2);
        ratios.push(rateOf(r2) / rateOf(r1));
      }
      const rate1 = rateOf(total1);
      const rate2 = rateOf(total2);
      rows.push({
        suite: SUITE, name: `rdma write ${size} B, ${PAIRS} streams, 2 workers over 1 in paired rounds`, engine: 'pool-2/pool-1', unit: 'message',
        opsPerSec: rate2, pool1PerSec: Math.round(rate1), ratio: round(rate2 / rate1),
        ratioMin: round(Math.min(...ratios)), ratioMax: round(Math.max(...ratios)), rounds: PAIRED_ROUNDS,
      });
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
  return rows;
}

export default async function scaling(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const [i, engine] of ENGINES.entries()) rows.push(...(await measure(engine, 1 + 8 * i)));
  rows.push(...(await pairedRatio()));
  rows.push(...(await ringHopRows()));
  rows.push(await moveCost('worker'), await moveCost('main'));
  // One VM's QPs over threads (QP shards): the same question at QP grain.
  rows.push(...(await qpShardRows()));
  return ratios(rows);
}
