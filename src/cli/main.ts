#!/usr/bin/env node
// The vrdma command. Each subcommand lives in its own module; this file only wires them up.
import { Command, InvalidArgumentError } from 'commander';
import { runDemo } from './demo.js';
import { runPcapCheck } from './pcap-check.js';
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

program
  .command('demo')
  .description('run the demo on an embedded default: no servers, no hardware')
  .option('--buffers <n>', 'buffers to move through each ring', positiveInt, 1_000_000)
  .option('--queue-size <n>', 'virtqueue size', positiveInt, 256)
  .option('--engine <engine>', 'ring kernels: wasm or ts', 'wasm')
  .option('--json', 'print the summary as one JSON object')
  .action(async (opts: { buffers: number; queueSize: number; engine: string; json?: boolean }) => {
    if (opts.engine !== 'wasm' && opts.engine !== 'ts') throw new InvalidArgumentError('engine must be wasm or ts');
    process.exitCode = await runDemo({ buffers: opts.buffers, queueSize: opts.queueSize, engine: opts.engine, json: opts.json ?? false });
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
