#!/usr/bin/env node
// The vrdma command. Each subcommand lives in its own module; this file only wires them up.
import { Command, InvalidArgumentError } from 'commander';
import { runDemo } from './demo.js';
import { runPcapCheck } from './pcap-check.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
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

await program.parseAsync(process.argv);
