// One migration stream over a TCP socket: frames out with backpressure, frames in, one at a time,
// each checked against the types the protocol allows next. The first fault of any kind — a bad
// frame, a message out of order, the peer's ABORT, a closed socket, a deadline — fails the
// channel for good: pending and later receives reject with that one MigrationError, and the
// socket is destroyed (after telling the peer why, when the fault is ours to report).
import type { Socket } from 'node:net';
import { MigrationError, MigrationErrorCode } from './errors.js';
import { DEFAULT_MAX_FRAME_BYTES, type Frame, FrameReader, MessageType, messageName } from './frame.js';
import { decodeAbort, encodeAbort } from './messages.js';

export interface ChannelOptions {
  maxFrameBytes?: number;
  /** Longest wait for the peer's next message, in ms. */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export class Channel {
  private readonly reader: FrameReader;
  private readonly frames: Frame[] = [];
  private waiter: { resolve: () => void } | null = null;
  private fault: MigrationError | null = null;
  private readonly timeoutMs: number;
  /** Bytes written to and read from the socket (frame headers included). */
  bytesSent = 0;
  bytesReceived = 0;

  constructor(readonly socket: Socket, options: ChannelOptions = {}) {
    this.reader = new FrameReader(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.fault !== null) return;
      this.bytesReceived += chunk.length;
      try {
        for (const f of this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))) this.frames.push(f);
      } catch (err) {
        this.fail(err as MigrationError, true);
        return;
      }
      this.wake();
    });
    socket.on('end', () => {
      try {
        this.reader.end();
        this.fail(new MigrationError(MigrationErrorCode.Closed, 'the peer closed the stream'), false);
      } catch (err) {
        this.fail(err as MigrationError, false);
      }
    });
    socket.on('error', (err) => this.fail(new MigrationError(MigrationErrorCode.Closed, `socket: ${err.message}`, { cause: err }), false));
    socket.on('close', () => this.fail(new MigrationError(MigrationErrorCode.Closed, 'the stream closed'), false));
  }

  /** The fault that ended the channel, if any. */
  get failed(): MigrationError | null {
    return this.fault;
  }

  /** Write a frame; resolves once the socket has room for more (backpressure). */
  async send(frame: Uint8Array): Promise<void> {
    if (this.fault !== null) throw this.fault;
    this.bytesSent += frame.length;
    if (this.socket.write(frame)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        if (this.fault !== null) reject(this.fault);
        else resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /**
   * The next frame, which must be one of `allowed`; anything else fails the channel with ORDER.
   * An ABORT from the peer rejects with PEER_ABORT carrying its code and reason.
   */
  async receive(allowed: readonly MessageType[], what: string, timeoutMs = this.timeoutMs): Promise<Frame> {
    const frame = await this.next(what, timeoutMs);
    if (frame.type === MessageType.Abort) throw this.peerAbort(frame, what);
    if (!allowed.includes(frame.type)) {
      const e = new MigrationError(MigrationErrorCode.Order, `${messageName(frame.type)} arrived ${what}; expected ${allowed.map(messageName).join(' or ')}`);
      this.fail(e, true);
      throw e;
    }
    return frame;
  }

  /**
   * Throws if the peer said anything (or the channel failed) while this side is the one talking:
   * an ABORT gives PEER_ABORT, anything else ORDER.
   */
  expectNothing(what: string): void {
    if (this.frames.length === 0) {
      if (this.fault !== null) throw this.fault;
      return;
    }
    const frame = this.frames[0];
    if (frame.type === MessageType.Abort) {
      this.frames.shift();
      throw this.peerAbort(frame, what);
    }
    const e = new MigrationError(MigrationErrorCode.Order, `${messageName(frame.type)} arrived ${what}; the peer should be listening`);
    this.fail(e, true);
    throw e;
  }

  private peerAbort(frame: Frame, what: string): MigrationError {
    const e = this.peerAbortError(frame, what);
    this.fail(e, false);
    return e;
  }

  private peerAbortError(frame: Frame, what: string): MigrationError {
    let detail: string;
    try {
      const a = decodeAbort(frame.body);
      detail = `${a.code}: ${a.reason}`;
    } catch (err) {
      detail = `(unreadable ABORT: ${(err as Error).message})`;
    }
    return new MigrationError(MigrationErrorCode.PeerAbort, `the peer gave up ${what}: ${detail}`);
  }

  private async next(what: string, timeoutMs: number): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.fault !== null) throw this.fault;
      const left = deadline - Date.now();
      if (left <= 0) {
        const e = new MigrationError(MigrationErrorCode.Timeout, `no message from the peer ${what} within ${timeoutMs} ms`);
        this.fail(e, true);
        throw e;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = {
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.resolve();
  }

  /**
   * Fail the channel with `err` (the first fault wins). With `tellPeer`, an ABORT naming it goes
   * out first, best effort. The socket is destroyed either way.
   */
  fail(err: MigrationError, tellPeer: boolean): void {
    if (this.fault !== null) return;
    // The peer's ABORT says why better than the broken pipe its closing caused here.
    const abort = err.code === MigrationErrorCode.Closed ? this.frames.find((f) => f.type === MessageType.Abort) : undefined;
    if (abort !== undefined) {
      this.frames.length = 0;
      this.fault = this.peerAbortError(abort, 'and closed the stream');
      this.socket.destroy();
      this.wake();
      return;
    }
    this.fault = err;
    if (tellPeer && !this.socket.destroyed && this.socket.writable) {
      this.socket.end(encodeAbort({ code: err.code, reason: err.message }));
      // Give the ABORT a moment to leave; a peer that does not read it loses nothing more.
      setTimeout(() => this.socket.destroy(), 200).unref();
    } else {
      this.socket.destroy();
    }
    this.wake();
  }

  /** Close after everything sent has been flushed (the protocol's normal end). */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }
}
