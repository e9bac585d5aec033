// The test side of a host process (vm-child.ts): fork it, call its ops over IPC, stop it.
// Not a test file; the end-to-end suites share it.
import { fileURLToPath } from 'node:url';
import type { Cqe } from '../../src/device/cqe.js';
import { IpcChild } from '../../src/host/ipc.js';

export interface Info { rcQpn: number; udQpn: number; lkey: number; rkey: number }

export class Host {
  private readonly child: IpcChild;
  readonly started: Promise<void>;
  info!: Info;

  constructor(readonly ip: string) {
    this.child = new IpcChild(fileURLToPath(new URL('./vm-child.js', import.meta.url)), { name: ip });
    this.started = this.child.started;
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.child.call<T>(op, args);
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
    await this.child.stop('close');
  }
}
