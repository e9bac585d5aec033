// `vrdma qp-shards`: one VM's QPs run in several threads, the kernel steering each QP's packets to
// its thread (src/demo/qp-shards.ts). Prints what happens and a summary, or one JSON object with --json.
import { type QpShardsOptions, runQpShards } from '../demo/qp-shards.js';
import { runReportCli } from './report-cli.js';

const SCOPE =
  'vrdma qp-shards: two VMs run their QPs in several threads each (QP shards), every packet steered by the kernel to the\n' +
  'thread that owns its QP; checked RDMA traffic runs between them while every QP moves from shard to shard, and a worker\n' +
  'shard is terminated under traffic.';

/** Returns the process exit status. */
export function runQpShardsCli(options: QpShardsOptions & { json: boolean }): Promise<number> {
  return runReportCli(SCOPE, options.json, (say) => runQpShards(options, say), (r) =>
    `verified: ${r.completions} work requests completed once and in order on ${r.qps} QPs through ${r.qpMoves} QP moves, ` +
    `${r.bytesVerified.toLocaleString('en-US')} bytes checked, in ${r.seconds} s`);
}
