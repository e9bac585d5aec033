// `vrdma worker-crash`: durable device backends keeping RDMA traffic through the death of the
// worker threads that run them (src/demo/worker-crash.ts). Prints what happens and a summary,
// or one JSON object with --json.
import { type WorkerCrashOptions, runWorkerCrash } from '../demo/worker-crash.js';
import { runReportCli } from './report-cli.js';

const SCOPE =
  'vrdma worker-crash: two guests drive virtio-rdma devices that run in a pool of worker threads; checked RDMA WRITE and\n' +
  'SEND traffic flows between them over UDP while their workers are terminated, and each device comes back from its journal.';

/** Returns the process exit status. */
export function runWorkerCrashCli(options: WorkerCrashOptions & { json: boolean }): Promise<number> {
  return runReportCli(SCOPE, options.json, (say) => runWorkerCrash(options, say), (r) =>
    `verified: ${r.completions} work requests and ${r.receives} receives completed once and in order on ${r.qps} QPs, ` +
    `${r.bytesVerified.toLocaleString('en-US')} bytes checked, in ${r.seconds} s through ${r.kills.length} worker deaths`);
}
