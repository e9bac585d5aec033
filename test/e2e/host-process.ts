// The test side of a host process (vm-child.ts): fork it, call its ops over IPC, stop it.
// Not a test file; the end-to-end suites share it.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Cqe } from '../../src/device/cqe.js';

export interface Info { rcQpn: number; udQpn: number; lkey: number; rkey: number }

export class Host {
  private readonly proc: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly started: Promise<void>;
  info!: Info;

  constructor(readonly ip: string) {
    this.proc = fork(fileURLToPath(new URL('./vm-child.js', import.meta.url)), [], { stdio: 'inherit', serialization: 'advanced' });
    this.started = new Promise((resolve) => this.proc.once('message', () => resolve()));
    this.proc.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new Error(`${this.ip}: ${m.error}`));
      else p?.resolve(m.result);
    });
    this.proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`host ${this.ip} exited with ${code}`));
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

  alloc(bytes: number): Promise<number> {
    return this.call<number>('alloc', { bytes });
  }
  waitCq(count: number, timeoutMs?: number): Promise<Cqe[]> {
    return this.call<Cqe[]>('waitCq', { count, timeoutMs });
  }
  sge(at: number, len: number) {
    return { addr: at, length: len, lkey: this.info.lkey };
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    await this.call('close');
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.disconnect();
    await exited;
  }
}

