// Readiness of a native fd on the event loop. Node has no way to watch an fd it did not open, so
// a worker thread blocks in poll(2) on it (native addon) and posts one message when it becomes
// readable; then it sleeps until the consumer has drained the fd and re-armed it. One message
// per burst, not per packet: the consumer drains everything waiting with batched reads.
//
// The handshake is one Int32 in shared memory: ARMED (the worker may poll), SIGNALLED (a message
// is on its way or the consumer is draining), STOP. The worker polls in slices of
// POLL_SLICE_MS so it sees STOP soon after close() without a second fd to wake it.
import { Worker } from 'node:worker_threads';
import { NetError, NetErrorCode } from './errors.js';

export const READY_ARMED = 0;
export const READY_SIGNALLED = 1;
export const READY_STOP = 2;
export const POLL_SLICE_MS = 50;

export interface ReadinessWorkerData {
  readonly fd: number;
  readonly control: SharedArrayBuffer;
}

export class ReadinessWatcher {
  private stopping: Promise<void> | null = null;
  /** Resolves when the worker has exited, whether stopped or dead of an error. */
  private readonly exited: Promise<void>;

  private constructor(private readonly worker: Worker, private readonly control: Int32Array) {
    this.exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  }

  /**
   * Watch `fd` for input, calling `onReadable` once per arming; the consumer drains the fd and
   * then calls rearm(). `onError` hears of a worker that died (the fd is no longer watched).
   */
  static async start(fd: number, onReadable: () => void, onError: (err: Error) => void): Promise<ReadinessWatcher> {
    const control = new SharedArrayBuffer(4);
    const data: ReadinessWorkerData = { fd, control };
    const worker = new Worker(new URL('./readiness-worker.js', import.meta.url), { workerData: data });
    const w = new ReadinessWatcher(worker, new Int32Array(control));
    await new Promise<void>((resolve, reject) => {
      const early = (err: Error) => reject(new NetError(NetErrorCode.Socket, `fd watcher failed to start: ${err.message}`, { cause: err }));
      worker.once('error', early);
      worker.once('message', () => {
        worker.off('error', early);
        resolve();
      });
    });
    worker.on('message', () => onReadable());
    worker.on('error', (err) => onError(err));
    return w;
  }

  /** The consumer drained the fd: the worker may poll again. */
  rearm(): void {
    if (Atomics.compareExchange(this.control, 0, READY_SIGNALLED, READY_ARMED) === READY_SIGNALLED) Atomics.notify(this.control, 0);
  }

  /** Stop the worker; resolves once it has exited and no longer touches the fd. */
  close(): Promise<void> {
    if (this.stopping === null) {
      Atomics.store(this.control, 0, READY_STOP);
      Atomics.notify(this.control, 0);
      this.stopping = this.exited;
    }
    return this.stopping;
  }
}
