// The entry script of a host process: `node agent-main.js <host-name> [log-level]`, forked by an
// AgentClient (or by `vrdma host`). It serves the agent's operations over the IPC channel and
// exits when the channel closes, after closing its VMs (their addresses are released).
import { pathToFileURL } from 'node:url';
import { type LogLevel, createLogger, isLogLevel } from '../observe/log.js';
import { HostAgent, agentOps } from './agent.js';
import { serveIpc } from './ipc.js';

export function runAgent(host: string, level: LogLevel): void {
  const log = createLogger(level, { host });
  const agent = new HostAgent(host, log);
  let closing: Promise<void> | null = null;
  const shutdown = (): Promise<void> => (closing ??= agent.close().catch((err: unknown) => log.error({ err }, 'closing VMs failed')));
  serveIpc(agentOps(agent, shutdown), () => {
    void shutdown().then(() => process.exit(0));
  });
  log.info('host agent ready');
}

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const level = process.argv[3] ?? 'warn';
  runAgent(process.argv[2] ?? 'host', isLogLevel(level) ? level : 'warn');
}
