// A classic pcap file (Ethernet link type, microsecond timestamps, little-endian) streamed to
// disk. Records are packed into fixed-size chunks and written in order, one write at a time;
// at most `maxBufferedBytes` wait in memory, past which records are dropped and counted, so a
// slow disk never slows the datapath or grows memory without bound. A timer pushes a partly
// filled chunk out so a live capture can be followed; close() writes everything and closes.
import { type FileHandle, open } from 'node:fs/promises';
import { pcapHeader } from '../nic/roce/pcap.js';
import { NetError, NetErrorCode } from './errors.js';

const RECORD_HEADER_BYTES = 16;
export const DEFAULT_SNAP_BYTES = 65535;
/** Large enough for one record of the largest snap length. */
export const DEFAULT_CHUNK_BYTES = 256 << 10;
export const DEFAULT_MAX_BUFFERED_BYTES = 8 << 20;
export const DEFAULT_FLUSH_INTERVAL_MS = 200;

export interface PcapWriterOptions {
  readonly snapBytes?: number;
  readonly chunkBytes?: number;
  readonly maxBufferedBytes?: number;
  /** How often a partly filled chunk is written (0: only when full, and on flush/close). */
  readonly flushIntervalMs?: number;
  /** Capture time in ns since the epoch; the default reads the wall clock to the microsecond. */
  readonly clock?: () => bigint;
}

export interface PcapWriterStats {
  records: number;
  /** Records dropped because too much was waiting for the disk, or after a write failed. */
  dropped: number;
  /** Bytes written to the file so far, header included. */
  bytesWritten: number;
}

export function wallClockNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

export class PcapWriter {
  private chunk: Uint8Array;
  private view: DataView;
  private fill = 0;
  /** Bytes handed to the file but not yet written, plus `fill`. */
  private pendingBytes = 0;
  private tail: Promise<void> = Promise.resolve();
  private failure: NetError | null = null;
  private closed: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly stats: PcapWriterStats = { records: 0, dropped: 0, bytesWritten: 0 };
  private readonly snapBytes: number;
  private readonly chunkBytes: number;
  private readonly maxBufferedBytes: number;
  private readonly clock: () => bigint;

  private constructor(private readonly file: FileHandle, readonly path: string, opts: PcapWriterOptions) {
    this.snapBytes = opts.snapBytes ?? DEFAULT_SNAP_BYTES;
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.clock = opts.clock ?? wallClockNs;
    this.chunk = new Uint8Array(this.chunkBytes);
    this.view = new DataView(this.chunk.buffer);
    const interval = opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    if (interval > 0) {
      this.timer = setInterval(() => this.submit(), interval);
      this.timer.unref();
    }
  }

  /** Create (or truncate) the file and write the pcap header. Rejects with NetError(CAPTURE_IO). */
  static async create(path: string, opts: PcapWriterOptions = {}): Promise<PcapWriter> {
    const snap = opts.snapBytes ?? DEFAULT_SNAP_BYTES;
    const chunk = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const max = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    if (!(Number.isInteger(snap) && snap >= 64 && snap <= 262144)) throw new RangeError(`snap length ${snap} is not in 64..262144`);
    if (!(Number.isInteger(chunk) && chunk >= RECORD_HEADER_BYTES + snap)) throw new RangeError(`chunk of ${chunk} bytes cannot hold a ${snap}-byte record`);
    if (!(Number.isInteger(max) && max >= chunk)) throw new RangeError(`buffer limit ${max} is below one chunk of ${chunk}`);
    let file: FileHandle;
    try {
      file = await open(path, 'w');
    } catch (err) {
      throw new NetError(NetErrorCode.CaptureIo, `cannot create ${path}: ${(err as Error).message}`, { cause: err });
    }
    const w = new PcapWriter(file, path, opts);
    w.chunk.set(pcapHeader(snap));
    w.fill = w.pendingBytes = 24;
    return w;
  }

  counters(): PcapWriterStats {
    return { ...this.stats };
  }

  /** Append one frame; false when it was dropped (buffer full, writer failed or closed). */
  write(frame: Uint8Array, timeNs: bigint = this.clock()): boolean {
    const incl = Math.min(frame.length, this.snapBytes);
    const recordBytes = RECORD_HEADER_BYTES + incl;
    if (this.closed !== null || this.failure !== null || this.pendingBytes + recordBytes > this.maxBufferedBytes) {
      this.stats.dropped++;
      return false;
    }
    if (this.fill + recordBytes > this.chunkBytes) this.submit();
    const us = timeNs / 1000n;
    const v = this.view;
    const o = this.fill;
    v.setUint32(o, Number(us / 1_000_000n) >>> 0, true);
    v.setUint32(o + 4, Number(us % 1_000_000n), true);
    v.setUint32(o + 8, incl, true);
    v.setUint32(o + 12, frame.length, true);
    this.chunk.set(frame.subarray(0, incl), o + RECORD_HEADER_BYTES);
    this.fill += recordBytes;
    this.pendingBytes += recordBytes;
    this.stats.records++;
    return true;
  }

  /** Hand the filled part of the chunk to the file queue and start a fresh chunk. */
  private submit(): void {
    if (this.fill === 0) return;
    const data = this.chunk.subarray(0, this.fill);
    this.chunk = new Uint8Array(this.chunkBytes);
    this.view = new DataView(this.chunk.buffer);
    this.fill = 0;
    this.tail = this.tail.then(async () => {
      if (this.failure === null) {
        try {
          let done = 0;
          while (done < data.length) done += (await this.file.write(data, done, data.length - done)).bytesWritten;
          this.stats.bytesWritten += data.length;
        } catch (err) {
          this.failure = new NetError(NetErrorCode.CaptureIo, `writing ${this.path}: ${(err as Error).message}`, { cause: err });
        }
      }
      this.pendingBytes -= data.length;
    });
  }

  /** Resolves when everything written so far is in the file; rejects if a write failed. */
  async flush(): Promise<void> {
    this.submit();
    await this.tail;
    if (this.failure !== null) throw this.failure;
  }

  /** Write what is buffered and close the file. Rejects with NetError(CAPTURE_IO) if a write failed. */
  close(): Promise<void> {
    if (this.closed === null) {
      if (this.timer !== null) clearInterval(this.timer);
      this.submit();
      this.closed = this.tail.then(async () => {
        await this.file.close();
        if (this.failure !== null) throw this.failure;
      });
    }
    return this.closed;
  }
}
