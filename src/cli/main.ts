#!/usr/bin/env node
// The vrdma command. Each subcommand lives in its own module; this file only wires them up.
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { DEMO_DEFAULTS } from '../demo/live-migration.js';
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../observe/log.js';
import { runDemo } from './demo.js';
import { runHost } from './host.js';
import { runPcapCheck } from './pcap-check.js';
import { runRingPump } from './ring-pump.js';
import { runWorkerCrashCli } from './worker-crash.js';
import { runQpShardsCli } from './qp-shards.js';
import { QP_SHARDS_DEFAULTS } from '../demo/qp-shards.js';
import { WORKER_CRASH_DEFAULTS } from '../demo/worker-crash.js';
import { PINGPONG_DEFAULTS, pingpongMtu, runPingpong } from './pingpong.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0: any free port)');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function mtuBytes(value: string): number {
  const n = Number(value);
  if (pingpongMtu(n) === undefined) throw new InvalidArgumentError('expected 256, 512, 1024, 2048 or 4096');
  return n;
}

const program = new Command()
  .name('vrdma')
  .description('Host side of a virtio-rdma device: RDMA (RoCE v2) for VMs that keeps live migration, overcommit and hotplug')
  .showHelpAfterError();

function lossRate(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError('expected a fraction in [0, 1), e.g. 0.01 for 1%');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!(n > 0 && n <= 3600)) throw new InvalidArgumentError('expected seconds in (0, 3600]');
  return n;
}

function logLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}`);
  return value;
}

function ipv4(value: string): string {
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(value) || value.split('.').some((p) => Number(p) > 255)) throw new InvalidArgumentError('expected an IPv4 address');
  return value;
}

function socketSide(value: string): 'worker' | 'main' {
  if (value !== 'worker' && value !== 'main') throw new InvalidArgumentError('expected worker or main');
  return value;
}

function ringFormat(value: string): 'split' | 'packed' {
  if (value !== 'split' && value !== 'packed') throw new InvalidArgumentError('expected split or packed');
  return value;
}

function ipList(count: number) {
  return (value: string): string[] => {
    const ips = value.split(',').map((s) => ipv4(s.trim()));
    if (ips.length !== count) throw new InvalidArgumentError(`expected ${count} comma-separated IPv4 addresses`);
    return ips;
  };
}

interface DemoFlags {
  workers: number; durable?: boolean; mtu: number; loss: number; qps: number; messageSize: number; duration: number; capture?: string; logLevel: LogLevel;
  metricsPort?: number; metricsHost: string; report?: string; json?: boolean; hostIps: string[]; vmIps: string[]; plain?: boolean;
}

program
  .command('demo')
  .description('live migration of a VM with RDMA in flight: three host processes and two VMs on loopback, checked traffic both ways, VM1 moved from host A to host C')
  .option('--workers <n>', 'worker threads per host process, its VMs spread over them (0: on its main thread)', nonNegativeInt, DEMO_DEFAULTS.workers)
  .option('--durable', "run every VM's device as a durable backend in a pool of --workers threads per host (a worker's death costs no traffic)")
  .option('--mtu <bytes>', 'path MTU of the RC connections', mtuBytes, DEMO_DEFAULTS.mtu)
  .option('--loss <rate>', 'fraction of packets each VM link drops', lossRate, DEMO_DEFAULTS.loss)
  .option('--qps <n>', 'RC QPs between the two VMs', positiveInt, DEMO_DEFAULTS.qps)
  .option('--message-size <bytes>', 'bytes per WRITE, SEND and READ', positiveInt, DEMO_DEFAULTS.messageBytes)
  .option('--duration <seconds>', 'how long the traffic runs', seconds, DEMO_DEFAULTS.durationMs / 1000)
  .option('--capture <file>', "write VM2's RoCE v2 packets to a pcap file")
  .option('--log-level <level>', `host processes' structured logs on stderr: ${LOG_LEVELS.join(', ')}`, logLevel, DEMO_DEFAULTS.logLevel)
  .option('--metrics-port <port>', 'serve Prometheus metrics of all hosts on this TCP port (0: any free port)', portNumber)
  .option('--metrics-host <address>', 'address the metrics endpoint binds', ipv4, DEMO_DEFAULTS.metricsHost)
  .option('--report <file>', 'write a self-contained HTML report (chart and summary)')
  .option('--json', 'print the summary as one JSON object instead of the progress and table')
  .option('--plain', 'plain progress lines even on a terminal')
  .option('--host-ips <a,b,c>', 'addresses of hosts A, B and C', ipList(3), DEMO_DEFAULTS.hostIps)
  .option('--vm-ips <vm1,vm2>', 'addresses (GIDs) of VM1 and VM2', ipList(2), DEMO_DEFAULTS.vmIps)
  .action(async (f: DemoFlags) => {
    try {
      process.exitCode = await runDemo({
        workers: f.workers, durable: f.durable ?? false, mtu: f.mtu, loss: f.loss, qps: f.qps, messageBytes: f.messageSize, durationMs: Math.round(f.duration * 1000), capture: f.capture,
        logLevel: f.logLevel, metricsPort: f.metricsPort, metricsHost: f.metricsHost, report: f.report, json: f.json ?? false,
        hostIps: f.hostIps as [string, string, string], vmIps: f.vmIps as [string, string], plainProgress: f.plain,
      });
    } catch (err) {
      console.error(`vrdma demo: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
  });

program
  .command('host')
  .description('a host process holding VMs, driven over its IPC channel by `vrdma demo` or the end-to-end tests')
  .argument('[name]', 'the host name used in logs and metrics', 'host')
  .option('--log-level <level>', `structured logs on stderr: ${LOG_LEVELS.join(', ')}`, logLevel, 'warn')
  .option('--workers <n>', 'worker threads the VMs are spread over; 0 runs them on the main thread', nonNegativeInt, availableParallelism())
  .option('--durable', "run each VM's device as a durable backend in a pool of --workers threads, the guests on the main thread")
  .option('--main-sockets', "with --workers: the main thread holds the VMs' UDP sockets, packets crossing to the workers through shared-memory rings (a worker's death cannot abort the process; slower on few cores)")
  .action((name: string, opts: { logLevel: LogLevel; workers: number; durable?: boolean; mainSockets?: boolean }) => {
    const status = runHost(name, opts.logLevel, opts.workers, opts.durable === true ? 'durable' : opts.mainSockets === true ? 'main-sockets' : 'plain');
    if (status !== 0) process.exitCode = status;
  });

program
  .command('ring-pump')
  .description('move checked buffers through a split and a packed virtqueue between a driver thread and a device thread')
  .option('--buffers <n>', 'buffers to move through each ring', positiveInt, 1_000_000)
  .option('--queue-size <n>', 'virtqueue size', positiveInt, 256)
  .option('--engine <engine>', 'ring kernels: wasm or ts', 'wasm')
  .option('--json', 'print the summary as one JSON object')
  .action(async (opts: { buffers: number; queueSize: number; engine: string; json?: boolean }) => {
    if (opts.engine !== 'wasm' && opts.engine !== 'ts') throw new InvalidArgumentError('engine must be wasm or ts');
    process.exitCode = await runRingPump({ buffers: opts.buffers, queueSize: opts.queueSize, engine: opts.engine, json: opts.json ?? false });
  });

program
  .command('worker-crash')
  .description('durable device backends: RDMA traffic between two guests carries on while the worker threads running their devices are terminated')
  .option('--workers <n>', 'worker threads in the backend pool', positiveInt, WORKER_CRASH_DEFAULTS.workers)
  .option('--qps <n>', 'RC QP pairs', positiveInt, WORKER_CRASH_DEFAULTS.qps)
  .option('--ops <n>', 'operations per QP (RDMA WRITE and SEND alternately)', positiveInt, WORKER_CRASH_DEFAULTS.ops)
  .option('--message-size <bytes>', 'bytes per operation', positiveInt, WORKER_CRASH_DEFAULTS.bytes)
  .option('--kills <n>', 'worker threads to terminate during the traffic', nonNegativeInt, WORKER_CRASH_DEFAULTS.kills)
  .option('--vm-ips <a,b>', 'the two guests\' addresses', ipList(2), WORKER_CRASH_DEFAULTS.ips)
  .option('--socket <side>', 'who holds the VMs\' UDP sockets: main (packets through shared-memory rings) or worker (each restart binds again)', socketSide, WORKER_CRASH_DEFAULTS.socket)
  .option('--rings <format>', 'the virtqueue format the guests negotiate: split or packed', ringFormat, WORKER_CRASH_DEFAULTS.rings)
  .option('--json', 'print one JSON object')
  .action(async (f: { workers: number; qps: number; ops: number; messageSize: number; kills: number; vmIps: string[]; socket: 'worker' | 'main'; rings: 'split' | 'packed'; json?: boolean }) => {
    process.exitCode = await runWorkerCrashCli({
      workers: f.workers, qps: f.qps, ops: f.ops, bytes: f.messageSize, window: WORKER_CRASH_DEFAULTS.window, kills: f.kills,
      ips: [f.vmIps[0], f.vmIps[1]], socket: f.socket, rings: f.rings, json: f.json === true,
    });
  });

program
  .command('qp-shards')
  .description('QP shards: two VMs run their QPs in several threads each, the kernel steering every packet to its QP\'s thread; checked traffic while every QP moves round the shards, then a worker shard terminated under traffic (needs the native addon)')
  .option('--shards <n>', 'QP shards per VM (2..64): the device\'s thread and n-1 workers', positiveInt, QP_SHARDS_DEFAULTS.shards)
  .option('--qps <n>', 'RC QP pairs', positiveInt, QP_SHARDS_DEFAULTS.qps)
  .option('--ops <n>', 'operations per QP (RDMA WRITE and SEND alternately)', positiveInt, QP_SHARDS_DEFAULTS.ops)
  .option('--message-size <bytes>', 'bytes per operation', positiveInt, QP_SHARDS_DEFAULTS.bytes)
  .option('--moves <n>', 'times every QP moves to the next shard during the traffic', nonNegativeInt, QP_SHARDS_DEFAULTS.moves)
  .option('--no-kill', 'do not terminate a worker shard')
  .option('--vm-ips <a,b>', 'the two VMs\' addresses', ipList(2), QP_SHARDS_DEFAULTS.ips)
  .option('--json', 'print one JSON object')
  .action(async (f: { shards: number; qps: number; ops: number; messageSize: number; moves: number; kill: boolean; vmIps: string[]; json?: boolean }) => {
    if (f.shards < 2) throw new InvalidArgumentError('--shards must be at least 2');
    process.exitCode = await runQpShardsCli({
      shards: f.shards, qps: f.qps, ops: f.ops, bytes: f.messageSize, window: QP_SHARDS_DEFAULTS.window, kill: f.kill, moves: f.moves, ips: [f.vmIps[0], f.vmIps[1]], json: f.json === true,
    });
  });

program
  .command('bench')
  .description('run benchmark suites (all when none is named); prints a table and JSON lines')
  .argument('[suites...]', 'suite names')
  .action(async (names: string[]) => {
    const { runSuites } = await import('../../bench/run.js');
    process.exitCode = (await runSuites(names)) ? 0 : 2;
  });

program
  .command('pcap-check')
  .description('decode each frame of a pcap file as RoCE v2 and check its ICRC; one JSON object per frame')
  .argument('<file>', 'classic pcap capture (Ethernet)')
  .action((file: string) => {
    process.exitCode = runPcapCheck(file);
  });

program
  .command('pingpong')
  .description("rdma-core's ibv_rc_pingpong on a vrdma VM: a server when no host is given, else a client of the server at <host>")
  .argument('[host]', 'the server to connect to (TCP, for the address exchange)')
  .option('-p, --port <port>', 'listen on / connect to TCP port (0: any free port, announced on stderr)', portNumber, PINGPONG_DEFAULTS.port)
  .option('-s, --size <bytes>', 'size of the message to exchange', positiveInt, PINGPONG_DEFAULTS.size)
  .option('-n, --iters <n>', 'number of exchanges', positiveInt, PINGPONG_DEFAULTS.iters)
  .option('-m, --mtu <bytes>', 'path MTU', mtuBytes, PINGPONG_DEFAULTS.mtu)
  .option('-r, --rx-depth <n>', 'receives to post at a time', positiveInt, PINGPONG_DEFAULTS.rxDepth)
  .option('-g, --gid-idx <index>', 'local GID index (a vrdma VM has one: 0, its address)', nonNegativeInt, PINGPONG_DEFAULTS.gidIndex)
  .option('--ip <address>', "the VM's IPv4 address: the UDP socket binds it and it is the GID", PINGPONG_DEFAULTS.ip)
  .option('--capture <file>', 'write every RoCE v2 packet to a pcap file')
  .action(async (host: string | undefined, opts: { port: number; size: number; iters: number; mtu: number; rxDepth: number; gidIdx: number; ip: string; capture?: string }) => {
    try {
      process.exitCode = await runPingpong({
        server: host, port: opts.port, size: opts.size, iters: opts.iters, mtu: opts.mtu, rxDepth: opts.rxDepth, gidIndex: opts.gidIdx,
        ip: opts.ip, capture: opts.capture,
        onListening: opts.port === 0 ? (port) => console.error(`vrdma pingpong: listening on TCP port ${port}`) : undefined,
      });
    } catch (err) {
      console.error(`vrdma pingpong: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
  });

await program.parseAsync(process.argv);
