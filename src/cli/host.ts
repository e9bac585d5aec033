// `vrdma host`: one host process of the demo and the end-to-end tests — it holds VMs and takes
// its orders over the IPC channel of the process that started it (src/host/agent-client.ts).
import { type HostMode, runAgent } from '../host/agent-main.js';
import type { LogLevel } from '../observe/log.js';

export function runHost(name: string, logLevel: LogLevel, workers: number, mode: HostMode = 'plain'): number {
  if (process.send === undefined) {
    console.error('vrdma host: a host process takes its orders over an IPC channel; it is started by `vrdma demo` or an AgentClient (fork), not from a shell');
    return 2;
  }
  runAgent(name, logLevel, workers, mode);
  return 0;
}
