// The other end of a host agent (agent.ts): forks a host process and calls its operations with
// types. The demo and the end-to-end tests drive their hosts through this.
import { fileURLToPath } from 'node:url';
import type client from 'prom-client';
import type { LogLevel } from '../observe/log.js';
import type { WorkloadConfig } from '../workload/config.js';
import type { MigrationReport } from '../migration/index.js';
import type { AcceptedVm, AgentVerifyResult, ListenArgs, MigrateArgs, MigrationEvent, OpenVmArgs, VmStatus, WorkloadEndpoint } from './agent.js';
import type { RcAttributes } from './connect.js';
import { IpcChild } from './ipc.js';
import type { PoolPlacement, Rebalanced } from './pool/host-pool.js';

const AGENT_MAIN = fileURLToPath(new URL('./agent-main.js', import.meta.url));

export interface AgentClientOptions {
  logLevel?: LogLevel;
  /** stdio of the host process (its logs are on stderr); default inherit. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
  /** Worker threads the host spreads its VMs over (pool/host-pool.ts); 0 (default) runs them on its main thread. */
  workers?: number;
  /**
   * Run each VM's device as a durable backend in a pool of `workers` threads (at least 1), the
   * guests on the host's main thread (src/backend).
   */
  durable?: boolean;
  /** With `workers`: the host's main thread holds the VMs' sockets (HostPoolOptions.socket 'main'). */
  mainSockets?: boolean;
}

export class AgentClient {
  private readonly child: IpcChild;

  constructor(readonly host: string, options: AgentClientOptions = {}) {
    this.child = new IpcChild(AGENT_MAIN, { name: `host ${host}`, args: [host, options.logLevel ?? 'warn', String(options.workers ?? 0), ...(options.durable === true ? ['durable'] : options.mainSockets === true ? ['main-sockets'] : [])], stdio: options.stdio });
  }

  get started(): Promise<void> {
    return this.child.started;
  }

  get running(): boolean {
    return this.child.running;
  }

  get pid(): number | undefined {
    return this.child.proc.pid;
  }

  ping(): Promise<{ host: string; pid: number; vms: string[]; workers?: number; durable?: boolean }> {
    return this.child.call('ping');
  }

  /** Which worker thread runs each VM (a host with workers only). */
  placement(): Promise<PoolPlacement> {
    return this.child.call('placement');
  }

  /** Move a running VM to the least busy worker of its host (null: it is there already). */
  moveVm(vm: string): Promise<{ report: MigrationReport; from: number; to: number } | null> {
    return this.child.call('moveVm', { vm });
  }

  /** Even the host's VMs out over its workers; the moves made, and the VMs that could not move. */
  rebalance(): Promise<Rebalanced> {
    return this.child.call('rebalance');
  }

  /** Take no new VM; resolves once the host holds none. */
  drainHost(): Promise<void> {
    return this.child.call('drainHost');
  }

  /**
   * Stop the worker thread `vm` runs in (a host with workers), or the one running its device (a
   * durable host), as a crash would; resolves with its thread id.
   */
  terminateWorkerOf(vm: string): Promise<number> {
    return this.child.call('terminateWorkerOf', { vm });
  }

  openVm(args: OpenVmArgs): Promise<{ name: string; ip: string }> {
    return this.child.call('openVm', { ...args });
  }

  setupWorkload(vm: string, config: WorkloadConfig, side: number): Promise<WorkloadEndpoint> {
    return this.child.call('setupWorkload', { vm, config, side });
  }

  connect(vm: string, mine: WorkloadEndpoint, peer: WorkloadEndpoint, mtu: number, rc?: Partial<RcAttributes>): Promise<void> {
    return this.child.call('connect', { vm, mine, peer, mtu, rc });
  }

  setLoss(vm: string, enabled: boolean): Promise<void> {
    return this.child.call('setLoss', { vm, enabled });
  }

  /** Listen for one incoming VM; resolves with the TCP port. */
  listen(args: ListenArgs): Promise<number> {
    return this.child.call('listen', { ...args });
  }

  /** The VM the listener on `port` took in, once it runs on this host. */
  accepted(port: number): Promise<AcceptedVm> {
    return this.child.call('accepted', { port });
  }

  /** Move a VM to another host's listener; `onProgress` hears each phase and round. */
  async migrate(args: MigrateArgs, onProgress?: (e: MigrationEvent) => void): Promise<MigrationReport> {
    const off = this.child.onEvent((e) => {
      if (e.type === 'migration' && e.vm === args.vm) onProgress?.(e as unknown as MigrationEvent);
    });
    try {
      return await this.child.call<MigrationReport>('migrate', { ...args });
    } finally {
      off();
    }
  }

  start(vm: string): Promise<void> {
    return this.child.call('start', { vm });
  }

  drain(vm: string, timeoutMs?: number): Promise<number[]> {
    return this.child.call('drain', { vm, timeoutMs });
  }

  settle(vm: string, peerOps: number[], timeoutMs?: number): Promise<void> {
    return this.child.call('settle', { vm, peerOps, timeoutMs });
  }

  pause(vm: string): Promise<Uint8Array> {
    return this.child.call('pause', { vm });
  }

  resume(vm: string, blob: Uint8Array): Promise<void> {
    return this.child.call('resume', { vm, blob });
  }

  verify(vm: string, peerOps: number[]): Promise<AgentVerifyResult> {
    return this.child.call('verify', { vm, peerOps });
  }

  status(vm: string): Promise<VmStatus> {
    return this.child.call('status', { vm });
  }

  metrics(): Promise<client.MetricObjectWithValues<client.MetricValue<string>>[]> {
    return this.child.call('metrics');
  }

  closeVm(vm: string): Promise<void> {
    return this.child.call('closeVm', { vm });
  }

  /** Close every VM, then end the process. */
  async stop(): Promise<void> {
    await this.child.stop('shutdown');
  }
}
