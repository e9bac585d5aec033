// The guest side of the control queue (docs/device-spec.md §6): each command is one chain, a
// request (header + struct) the device reads and a response buffer it writes. Commands go one at a
// time; the answer is awaited on the queue's used ring, sleeping on its call doorbell when the
// device runs elsewhere (an inline device has answered by the time the kick returns).
import { CTRL_HEADER_BYTES, type Cmd, RdmaStatus } from '../../device/abi.js';
import type { DriverTransport } from '../../device/driver-transport.js';
import type { Arena } from '../../memory/arena.js';
import { gpa } from '../../memory/gpa.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { GuestError, GuestErrorCode, RdmaCommandError } from './errors.js';
import type { GuestBuffer, GuestRing } from './ring.js';

/** What came back for a chain: the used length and the bytes the device wrote. */
export interface RawAnswer {
  usedLen: number;
  /** The writable bytes (all of them, whatever usedLen says). */
  bytes: Uint8Array;
}

export class ControlChannel {
  private tail: Promise<unknown> = Promise.resolve();
  /** Token of the next command's chain (driver state: migration carries it). */
  nextToken = 1;
  private inFlight = 0;

  constructor(
    private readonly transport: DriverTransport,
    private readonly guest: GuestMemory,
    private readonly alloc: Arena,
    private readonly ring: GuestRing,
    private readonly timeoutMs: number,
  ) {}

  /** Run one command; resolves to its response struct, or rejects with RdmaCommandError. */
  async command(cmd: Cmd, body: Uint8Array, responseBytes: number): Promise<DataView> {
    const header = new Uint8Array(CTRL_HEADER_BYTES);
    const hv = new DataView(header.buffer);
    hv.setUint16(0, cmd, true);
    hv.setUint32(4, body.length, true);
    const request = new Uint8Array(CTRL_HEADER_BYTES + body.length);
    request.set(header);
    request.set(body, CTRL_HEADER_BYTES);
    const answer = await this.raw([request], [CTRL_HEADER_BYTES + responseBytes]);
    if (answer.usedLen < CTRL_HEADER_BYTES) throw new GuestError(GuestErrorCode.Protocol, `command ${cmd}: used length ${answer.usedLen}`);
    const av = new DataView(answer.bytes.buffer, answer.bytes.byteOffset);
    const status = av.getUint8(0) as RdmaStatus;
    const len = av.getUint32(4, true);
    if (status !== RdmaStatus.Ok) throw new RdmaCommandError(cmd, status);
    if (len !== responseBytes || answer.usedLen !== CTRL_HEADER_BYTES + len) {
      throw new GuestError(GuestErrorCode.Protocol, `command ${cmd}: response of ${len} bytes, used ${answer.usedLen}`);
    }
    return new DataView(answer.bytes.buffer, answer.bytes.byteOffset + CTRL_HEADER_BYTES, len);
  }

  /**
   * Post one chain of readable pieces (each in its own guest buffer) and writable buffers of the
   * given lengths, and wait for the device to return it. For tests that build hostile chains.
   */
  raw(readable: readonly Uint8Array[], writableLens: readonly number[], indirect = false): Promise<RawAnswer> {
    this.inFlight++;
    const run = this.tail.then(() => this.exchange(readable, writableLens, indirect)).finally(() => this.inFlight--);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Whether a command is queued or waiting for its answer. */
  get busy(): boolean {
    return this.inFlight > 0;
  }

  private async exchange(readable: readonly Uint8Array[], writableLens: readonly number[], indirect: boolean): Promise<RawAnswer> {
    const owned: number[] = [];
    const place = (len: number): GuestBuffer => {
      const at = this.alloc.alloc(Math.max(len, 1), 8);
      owned.push(at);
      return { gpa: at, len };
    };
    try {
      const r = readable.map((bytes) => {
        const b = place(bytes.length);
        if (bytes.length > 0) this.guest.write(gpa(b.gpa), bytes);
        return b;
      });
      const w = writableLens.map((len) => {
        const b = place(len);
        if (len > 0) this.guest.fill(gpa(b.gpa), len, 0);
        return b;
      });
      const token = this.nextToken++;
      if (!this.ring.add(r, w, token, indirect)) throw new GuestError(GuestErrorCode.RingFull, 'control queue is full');
      if (this.ring.publish()) this.transport.kick(0);
      const usedLen = await this.await(token);
      const total = w.reduce((s, b) => s + b.len, 0);
      const bytes = new Uint8Array(total);
      let off = 0;
      for (const b of w) {
        if (b.len > 0) this.guest.read(gpa(b.gpa), bytes.subarray(off, off + b.len));
        off += b.len;
      }
      return { usedLen, bytes };
    } finally {
      for (const at of owned) this.alloc.release(at);
    }
  }

  private async await(token: number): Promise<number> {
    const call = this.transport.callDoorbell(0);
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = call.value();
      for (const u of this.ring.collect()) if (u.token === token) return u.len;
      if (this.transport.status.needsReset) throw new GuestError(GuestErrorCode.NeedsReset, 'the device needs reset');
      if (this.ring.enableCallbacks()) continue;
      const left = deadline - Date.now();
      if (left <= 0) throw new GuestError(GuestErrorCode.Timeout, `no answer within ${this.timeoutMs} ms`);
      // Atomics.waitAsync alone does not keep Node's event loop alive: hold a timer meanwhile.
      const keepAlive = setTimeout(() => {}, left);
      try {
        await call.waitAsync(seen, left);
      } finally {
        clearTimeout(keepAlive);
      }
    }
  }
}
