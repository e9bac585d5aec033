// The test side of a migration host process (migration-host.ts): fork it, call its ops over
// IPC, stop it. Not a test file.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What `open` answers: the CQ, the MR keys and each QP's buffers. */
export interface Opened {
  cqn: number;
  lkey: number;
  rkey: number;
  layouts: { qpn: number; writeArea: number }[];
}

export class HostProcess {
  private readonly proc: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly started: Promise<void>;

  constructor(readonly name: string) {
    this.proc = fork(fileURLToPath(new URL('./migration-host.js', import.meta.url)), [], { stdio: 'inherit', serialization: 'advanced' });
    this.started = new Promise((resolve) => this.proc.once('message', () => resolve()));
    this.proc.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new Error(`${this.name}: ${m.error}`));
      else p?.resolve(m.result);
    });
    this.proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`${this.name} exited with ${code}`));
      this.pending.clear();
    });
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, op, args });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    await this.call('close').catch(() => {});
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.disconnect();
    await exited;
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
