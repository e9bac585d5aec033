// The entry script of a host process: `node agent-main.js <host-name> [log-level] [workers]
// [durable | main-sockets]`, forked by an AgentClient (or by `vrdma host`). It serves the agent's
// operations over the IPC channel and exits when the channel closes, after closing its VMs (their
// addresses are released). With workers 0 the VMs run on this process's main thread (agent.ts);
// with N > 0 they are spread over a pool of N worker threads (pool/host-pool.ts) and the main
// thread keeps the control path (and, with `main-sockets`, the VMs' sockets). With `durable`, the
// agent and the VMs' guests run on the main thread and each VM's device runs as a durable backend
// in a pool of N worker threads (src/backend): a worker that dies costs its devices no traffic.
import { pathToFileURL } from 'node:url';
import { type LogLevel, createLogger, isLogLevel } from '../observe/log.js';
import { HostAgent, agentOps } from './agent.js';
import { type OpTable, sendEvent, serveIpc } from './ipc.js';
import { HostPool, poolOps } from './pool/host-pool.js';
import { BackendPool } from '../backend/backend-pool.js';

/** How a host process runs its VMs beyond the worker count: a pool's sockets on the main thread, or durable backends. */
export type HostMode = 'plain' | 'main-sockets' | 'durable';
const MODES: readonly string[] = ['plain', 'main-sockets', 'durable'] satisfies HostMode[];

export function runAgent(host: string, level: LogLevel, workers = 0, mode: HostMode = 'plain'): void {
  const log = createLogger(level, { host });
  let ops: OpTable;
  let close: () => Promise<void>;
  if (mode === 'durable') {
    const backends = new BackendPool({ workers: Math.max(1, workers) });
    const agent = new HostAgent(host, log, sendEvent, backends);
    close = async () => {
      await agent.close();
      await backends.close();
    };
    ops = agentOps(agent, () => shutdown());
  } else if (workers > 0) {
    const pool = new HostPool({ host, workers, logLevel: level, log, socket: mode === 'main-sockets' ? 'main' : 'worker' });
    close = () => pool.close();
    ops = poolOps(pool, () => shutdown());
  } else {
    const agent = new HostAgent(host, log);
    close = () => agent.close();
    ops = agentOps(agent, () => shutdown());
  }
  let closing: Promise<void> | null = null;
  const shutdown = (): Promise<void> => (closing ??= close().catch((err: unknown) => log.error({ err }, 'closing VMs failed')));
  serveIpc(ops, () => {
    void shutdown().then(() => process.exit(0));
  });
  log.info({ workers, mode }, 'host agent ready');
}

/** The workers argument: an integer in [0, 256] (0 when absent); null if it is not one. */
function workersArg(s: string | undefined): number | null {
  const n = Number(s ?? 0);
  return Number.isSafeInteger(n) && n >= 0 && n <= 256 ? n : null;
}

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const level = process.argv[3] ?? 'warn';
  const workers = workersArg(process.argv[4]);
  if (workers === null) {
    console.error(`agent-main: workers must be an integer in [0, 256], got ${process.argv[4]}`);
    process.exit(2);
  }
  const mode = process.argv[5] ?? 'plain';
  if (!MODES.includes(mode)) {
    console.error(`agent-main: the mode is one of ${MODES.join(', ')}, got ${mode}`);
    process.exit(2);
  }
  runAgent(process.argv[2] ?? 'host', isLogLevel(level) ? level : 'warn', workers, mode as HostMode);
}
