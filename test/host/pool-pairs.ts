// Two VMs of a host pool running the checked workload between them, driven through the pool's
// calls as a parent's would be: set up, connect and start; then drain, settle and verify both.
// Shared by the host pool's tests. Not a test file.
import type { AgentVerifyResult, VmStatus, WorkloadEndpoint } from '../../src/host/agent.js';
import type { HostPool } from '../../src/host/pool/host-pool.js';
import type { WorkloadConfig } from '../../src/workload/config.js';

/** Start the workload between `a` (side 0) and `b` (side 1); returns their endpoints. */
export async function pairUp(pool: HostPool, a: string, b: string, config: WorkloadConfig): Promise<[WorkloadEndpoint, WorkloadEndpoint]> {
  const [ea, eb] = await Promise.all([
    pool.call<WorkloadEndpoint>(a, 'setupWorkload', { vm: a, config, side: 0 }),
    pool.call<WorkloadEndpoint>(b, 'setupWorkload', { vm: b, config, side: 1 }),
  ]);
  await Promise.all([pool.call(a, 'connect', { vm: a, mine: ea, peer: eb, mtu: 1024 }), pool.call(b, 'connect', { vm: b, mine: eb, peer: ea, mtu: 1024 })]);
  await Promise.all([pool.call(a, 'start', { vm: a }), pool.call(b, 'start', { vm: b })]);
  return [ea, eb];
}

/** Drain both, let the last messages land, and verify each against the model; [a's, b's]. */
export async function drainAndVerify(pool: HostPool, a: string, b: string): Promise<[AgentVerifyResult, AgentVerifyResult]> {
  const [opsA, opsB] = await Promise.all([pool.call<number[]>(a, 'drain', { vm: a }), pool.call<number[]>(b, 'drain', { vm: b })]);
  await Promise.all([pool.call(a, 'settle', { vm: a, peerOps: opsB }), pool.call(b, 'settle', { vm: b, peerOps: opsA })]);
  return Promise.all([pool.call<AgentVerifyResult>(a, 'verify', { vm: a, peerOps: opsB }), pool.call<AgentVerifyResult>(b, 'verify', { vm: b, peerOps: opsA })]);
}

/** Operations `vm`'s workload has completed. */
export async function completed(pool: HostPool, vm: string): Promise<number> {
  return (await pool.call<VmStatus>(vm, 'status', { vm })).workload!.opsCompleted;
}
