// `vrdma qp-shards`: one VM's QPs run in several threads, the kernel steering each QP's packets to
// its thread (src/demo/qp-shards.ts). Prints what happens and a summary, or one JSON object with --json.
import { type QpShardsOptions, runQpShards } from '../demo/qp-shards.js';

const SCOPE =
  'vrdma qp-shards: two VMs run their QPs in several threads each (QP shards), every packet steered by the kernel to the\n' +
  'thread that owns its QP; checked RDMA traffic runs between them while every QP moves from shard to shard, and a worker\n' +
  'shard is terminated under traffic.';

/** Returns the process exit status. */
export async function runQpShardsCli(options: QpShardsOptions & { json: boolean }): Promise<number> {
  if (!options.json) console.log(`${SCOPE}\n`);
  try {
    const report = await runQpShards(options, options.json ? undefined : (line) => console.log(line));
    if (options.json) console.log(JSON.stringify(report));
    else console.log(`\nverified: ${report.completions} work requests completed once and in order on ${report.qps} QPs through ${report.qpMoves} QP moves, ${report.bytesVerified.toLocaleString('en-US')} bytes checked, in ${report.seconds} s`);
    return 0;
  } catch (err) {
    console.error(`FAILED: ${(err as Error).message}`);
    return 1;
  }
}
