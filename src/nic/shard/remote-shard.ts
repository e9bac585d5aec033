// The device thread's handle on a QP shard in a worker thread (shard-worker.ts): synchronous calls
// over the shard's control block (call-channel.ts), its post ring (work requests, sent without
// waiting: the shard runs them in order, and before any call), its completion ring, and its
// lifecycle.
import { Worker } from 'node:worker_threads';
import { CallClient } from '../../backend/call-channel.js';
import { ControlBlock } from '../../backend/control-block.js';
import { PacketRing } from '../../backend/packet-ring.js';
import { VerbsError, VerbsErrorCode } from '../errors.js';
import type { RecvWr, SendWr } from '../verbs.js';
import { FieldWriter } from '../../state/index.js';
import { POST_RECV, POST_SEND, encodeRecvWr, encodeSendWr } from './post-codec.js';
import type { ShardStart, ShardWorkerData, ShardWorkerMessage } from './shard-worker.js';

/** Bytes of a shard's completion ring: room for about 16 k completions. */
export const COMPLETION_RING_BYTES = 1024 * 1024;
/** Bytes of a shard's post ring: room for about 10 k one-SGE work requests. */
export const POST_RING_BYTES = 1024 * 1024;
/** How long a post waits for room in a full post ring before it fails. */
const POST_ROOM_MS = 10_000;
/** A journal slot the shard's control block must have; a shard keeps no journal. */
const MIN_SLOT_BYTES = 4096;
/** How long a closing shard may take to let its owed ACKs out and release its socket. */
const CLOSE_MS = 5_000;

export class RemoteShard {
  private readonly client: CallClient;
  /** Why the worker is gone, once it is; calls fail with it from then on. */
  private gone: string | null = null;
  /** Resolves when the worker has exited. */
  readonly exited: Promise<void>;
  /** Called once if the worker goes away without being asked to. */
  onLost: (why: string) => void = () => {};
  private stopping = false;
  /** Encodes each post (its buffer kept from one post to the next). */
  private readonly writer = new FieldWriter(4096);
  private bellDue = false;

  private constructor(
    readonly index: number,
    private readonly worker: Worker,
    block: ControlBlock,
    readonly completions: PacketRing,
    private readonly posts: PacketRing,
    callTimeoutMs: number,
    /** The shard's socket (a successor adopts it if this thread dies: it stays in the group). */
    readonly fd: number,
  ) {
    this.client = new CallClient(block, callTimeoutMs);
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('error', (err) => this.lose(`shard ${index} failed: ${err.message}`));
    worker.once('exit', (code) => this.lose(`shard ${index}'s worker exited (code ${code})`));
  }

  /**
   * Start a shard worker; resolves once its socket is bound in the group (or adopted: data.adoptFd)
   * and it holds `objects()`, taken at that moment (a replacement's start: what every shard
   * holds). Rejects if it could not start.
   */
  static async start(data: Omit<ShardWorkerData, 'block' | 'completions' | 'posts'>, callTimeoutMs = 10_000, objects?: () => Uint8Array): Promise<RemoteShard> {
    const block = ControlBlock.create(MIN_SLOT_BYTES);
    const completions = PacketRing.create(COMPLETION_RING_BYTES);
    const posts = PacketRing.create(POST_RING_BYTES);
    const full: ShardWorkerData = { ...data, block: block.buffer, completions: completions.buffer, posts: posts.buffer };
    const worker = new Worker(new URL('./shard-worker.js', import.meta.url), { workerData: full });
    const fd = await new Promise<number>((resolve, reject) => {
      const onMessage = (m: ShardWorkerMessage): void => {
        cleanup();
        if ('ready' in m) {
          try {
            worker.postMessage({ objects: objects?.() ?? null } satisfies ShardStart);
            resolve(m.fd);
          } catch (err) {
            reject(err);
          }
        } else reject(new VerbsError(VerbsErrorCode.IoError, 'error' in m ? m.error : `shard ${data.index} closed while starting`));
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new VerbsError(VerbsErrorCode.IoError, `shard ${data.index} failed to start: ${err.message}`));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new VerbsError(VerbsErrorCode.IoError, `shard ${data.index}'s worker exited while starting (code ${code})`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new RemoteShard(data.index, worker, block, completions, posts, callTimeoutMs, fd);
  }

  get alive(): boolean {
    return this.gone === null;
  }

  /**
   * Queue work requests for QP `qpn` on the shard, without waiting for it: it runs them in order,
   * and all of them before any later call. One it refuses comes back as a completion with
   * LOC_QP_OP_ERR. Blocks only while the post ring is full (the shard is behind).
   */
  post(qpn: number, kind: typeof POST_SEND | typeof POST_RECV, wrs: readonly (SendWr | RecvWr)[]): void {
    if (this.gone !== null) throw new VerbsError(VerbsErrorCode.IoError, this.gone);
    const w = this.writer;
    w.reset();
    for (const wr of wrs) {
      if (kind === POST_SEND) encodeSendWr(w, wr as SendWr);
      else encodeRecvWr(w, wr);
    }
    const bytes = w.finish();
    if (!this.posts.fits(bytes.length) && !this.posts.waitForRoom(bytes.length, POST_ROOM_MS)) {
      throw new VerbsError(VerbsErrorCode.NoResources, `shard ${this.index}'s post ring stayed full for ${POST_ROOM_MS} ms`);
    }
    this.posts.push(bytes, qpn, kind);
    // One wake-up for the posts of this turn.
    if (!this.bellDue) {
      this.bellDue = true;
      queueMicrotask(() => {
        this.bellDue = false;
        this.posts.ring();
      });
    }
  }

  /** A synchronous call into the shard; VerbsError IO_ERROR once the shard is gone. */
  call(method: string, args: unknown[]): unknown {
    if (this.gone !== null) throw new VerbsError(VerbsErrorCode.IoError, this.gone);
    return this.client.call(method, args);
  }

  /** Ask the shard to stop (it lets owed ACKs out and closes its socket); terminate it if it does not in time. */
  async stop(): Promise<void> {
    if (this.stopping) return this.exited;
    this.stopping = true;
    if (this.gone === null) {
      try {
        this.client.call('close', []);
      } catch {
        // It is stopping anyway; terminate below if it does not exit.
      }
    }
    const timer = setTimeout(() => void this.worker.terminate(), CLOSE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** End the worker at once (a test's way to kill a shard). */
  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private lose(why: string): void {
    if (this.gone !== null) return;
    this.gone = why;
    if (!this.stopping) this.onLost(why);
  }
}
