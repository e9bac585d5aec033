// Framing of the migration stream (docs/architecture.md, "Migration coordinator"): every message
// is an 8-byte header — u32 body length, u16 type, u16 reserved (zero), little-endian — and its
// body. The reader refuses a frame as soon as its header is wrong (unknown type, length above the
// limit, reserved bits set), before buffering any of its body, so a hostile peer cannot make
// this host hold more than one frame's worth of its bytes.
import { MigrationError, MigrationErrorCode } from './errors.js';

export const FRAME_HEADER_BYTES = 8;
/** Default cap on one frame's body: a page batch or a state blob (device, guest, application). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** The protocol's messages, with their numbers on the wire. */
export enum MessageType {
  /** S→D: magic, protocol version, the VM's address and RAM layout. */
  Hello = 1,
  /** D→S: the destination speaks this version and can hold this VM. */
  HelloAck = 2,
  /** S→D: a batch of guest pages (numbers, kinds, and the bytes of the non-zero ones). */
  Pages = 3,
  /** S→D: a pre-copy round (or the final, stop-and-copy one) is complete. */
  RoundEnd = 4,
  /** S→D: the device state blob (RdmaDevice.saveState, with the provider's nested). */
  DeviceState = 5,
  /** S→D: the simulated guest driver's state (vCPU and driver-private state). */
  GuestState = 6,
  /** S→D: the application's state, from pauseGuest(). */
  AppState = 7,
  /** S→D: the source released the VM's address; when the guest stopped and each QP was suspended. */
  Switchover = 8,
  /** D→S: the VM runs on the destination; when its guest resumed. */
  Confirm = 9,
  /** D→S: when each QP completed its first work request after resume. */
  Blackout = 10,
  /** Either way: giving up, with a code and a reason; the sender closes the stream. */
  Abort = 11,
  /**
   * S→D, once, during pre-copy: a device and guest state taken while the guest runs. The
   * destination vets it (a trial restore on scratch memory) before the guest ever stops, and the
   * code either side runs at the switchover has run once.
   */
  StatePreview = 12,
  /** D→S: the preview restored on scratch memory; the source may stop the guest when it is time. */
  PreviewAck = 13,
}

const TYPE_NAMES: Record<number, string> = {
  [MessageType.Hello]: 'HELLO',
  [MessageType.HelloAck]: 'HELLO_ACK',
  [MessageType.Pages]: 'PAGES',
  [MessageType.RoundEnd]: 'ROUND_END',
  [MessageType.DeviceState]: 'DEVICE_STATE',
  [MessageType.GuestState]: 'GUEST_STATE',
  [MessageType.AppState]: 'APP_STATE',
  [MessageType.Switchover]: 'SWITCHOVER',
  [MessageType.Confirm]: 'CONFIRM',
  [MessageType.Blackout]: 'BLACKOUT',
  [MessageType.Abort]: 'ABORT',
  [MessageType.StatePreview]: 'STATE_PREVIEW',
  [MessageType.PreviewAck]: 'PREVIEW_ACK',
};

/** The message's name for logs and errors. */
export function messageName(type: number): string {
  return TYPE_NAMES[type] ?? `type ${type}`;
}

export function isMessageType(type: number): type is MessageType {
  return TYPE_NAMES[type] !== undefined;
}

export interface Frame {
  type: MessageType;
  body: Uint8Array;
}

/** Header and body as one buffer (bodies given in pieces are copied once). */
export function encodeFrame(type: MessageType, ...pieces: Uint8Array[]): Uint8Array {
  const bodyBytes = pieces.reduce((n, p) => n + p.length, 0);
  if (bodyBytes > 0xffffffff) throw new MigrationError(MigrationErrorCode.Oversized, `a ${messageName(type)} body of ${bodyBytes} bytes`);
  const out = new Uint8Array(FRAME_HEADER_BYTES + bodyBytes);
  const v = new DataView(out.buffer);
  v.setUint32(0, bodyBytes, true);
  v.setUint16(4, type, true);
  let off = FRAME_HEADER_BYTES;
  for (const p of pieces) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Splits a byte stream into frames. push() every chunk as it arrives and take the frames it
 * returns; end() when the stream closes. Both throw MigrationError on a bad stream, after which
 * the reader must not be used again.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** The header of the frame being assembled, once read. */
  private pending: { type: MessageType; bodyBytes: number } | null = null;

  constructor(readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.pending === null) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        this.pending = this.header(this.take(FRAME_HEADER_BYTES));
      }
      if (this.buffered < this.pending.bodyBytes) break;
      out.push({ type: this.pending.type, body: this.take(this.pending.bodyBytes) });
      this.pending = null;
    }
    return out;
  }

  /** The stream ended: throws if it ended inside a frame. */
  end(): void {
    if (this.pending !== null || this.buffered > 0) {
      const want = this.pending === null ? FRAME_HEADER_BYTES : this.pending.bodyBytes;
      throw new MigrationError(MigrationErrorCode.ShortFrame, `the stream ended ${this.buffered} bytes into a ${this.pending === null ? 'frame header' : `${messageName(this.pending.type)} body`} of ${want}`);
    }
  }

  private header(h: Uint8Array): { type: MessageType; bodyBytes: number } {
    const v = new DataView(h.buffer, h.byteOffset, FRAME_HEADER_BYTES);
    const bodyBytes = v.getUint32(0, true);
    const type = v.getUint16(4, true);
    const reserved = v.getUint16(6, true);
    if (!isMessageType(type)) throw new MigrationError(MigrationErrorCode.BadType, `frame type ${type} is not defined`);
    if (reserved !== 0) throw new MigrationError(MigrationErrorCode.Malformed, `${messageName(type)} frame has reserved bits 0x${reserved.toString(16)}`);
    if (bodyBytes > this.maxFrameBytes) {
      throw new MigrationError(MigrationErrorCode.Oversized, `${messageName(type)} frame of ${bodyBytes} bytes exceeds the limit of ${this.maxFrameBytes}`);
    }
    return { type, bodyBytes };
  }

  /** The next `n` buffered bytes (n <= buffered), as one array. */
  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    let out: Uint8Array;
    if (n === 0) {
      out = new Uint8Array(0);
    } else if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0];
        const k = Math.min(c.length, n - off);
        out.set(c.subarray(0, k), off);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }
}
