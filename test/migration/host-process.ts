// The test side of a migration host process (migration-host.ts): fork it, call its ops over
// IPC, stop it. Not a test file.
import { fileURLToPath } from 'node:url';
import { IpcChild } from '../../src/host/ipc.js';

/** What `open` answers: the CQ, the MR keys and each QP's buffers. */
export interface Opened {
  cqn: number;
  lkey: number;
  rkey: number;
  layouts: { qpn: number; writeArea: number }[];
}

export class HostProcess {
  private readonly child: IpcChild;

  constructor(readonly name: string) {
    this.child = new IpcChild(fileURLToPath(new URL('./migration-host.js', import.meta.url)), { name });
  }

  get started(): Promise<void> {
    return this.child.started;
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.child.call<T>(op, args);
  }

  async stop(): Promise<void> {
    await this.child.stop('close');
  }
}

/** Host processes started by a test file, stopped together (call stopAll in after()). */
export class HostPool {
  private readonly hosts: HostProcess[] = [];

  async start(name: string): Promise<HostProcess> {
    const h = new HostProcess(name);
    this.hosts.push(h);
    await h.started;
    return h;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.hosts.splice(0).map((h) => h.stop()));
  }
}
