// `vrdma worker-crash`: durable device backends keeping RDMA traffic through the death of the
// worker threads that run them (src/demo/worker-crash.ts). Prints what happens and a summary,
// or one JSON object with --json.
import { type WorkerCrashOptions, runWorkerCrash } from '../demo/worker-crash.js';

const SCOPE =
  'vrdma worker-crash: two guests drive virtio-rdma devices that run in a pool of worker threads; checked RDMA WRITE and\n' +
  'SEND traffic flows between them over UDP while their workers are terminated, and each device comes back from its journal.';

/** Returns the process exit status. */
export async function runWorkerCrashCli(options: WorkerCrashOptions & { json: boolean }): Promise<number> {
  if (!options.json) console.log(`${SCOPE}\n`);
  try {
    const report = await runWorkerCrash(options, options.json ? undefined : (line) => console.log(line));
    if (options.json) console.log(JSON.stringify(report));
    else {
      console.log(
        `\nverified: ${report.completions} work requests and ${report.receives} receives completed once and in order on ${report.qps} QPs, ` +
          `${report.bytesVerified.toLocaleString('en-US')} bytes checked, in ${report.seconds} s through ${report.kills.length} worker deaths`,
      );
    }
    return 0;
  } catch (err) {
    console.error(`FAILED: ${(err as Error).message}`);
    return 1;
  }
}
