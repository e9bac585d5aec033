// A single-producer, single-consumer ring of datagrams in a SharedArrayBuffer: how packets move
// between the thread that holds a device's UDP socket and the worker that runs the device
// (socket-side.ts, ring-link.ts), without postMessage. Each record is
//   u32 length | u32 IPv4 address | u32 UDP port | the bytes, padded to 8
// and a record that would cross the end is preceded by a skip marker (length 0xffffffff) and
// written at the start. `head` (written by the producer) and `tail` (by the consumer) count bytes
// modulo 2^32; the producer rings `bell` after writing. A full ring drops the datagram and counts
// it, as a socket buffer would: the ring is bounded, and go-back-N recovers what it drops.
// A consumer that died leaves `tail` where its last pop finished; its successor carries on from
// there, so datagrams still in the ring are not lost with the thread.

const HEAD = 0;
const TAIL = 1;
const BELL = 2;
const DROPPED = 3;
/** Consumers waiting on the bell now: the producer notifies only when there is one. */
const WAITERS = 4;
/** Producers waiting for room (waitForRoom): a pop notifies only when there is one. */
const ROOM_WAITERS = 5;
const HEADER_BYTES = 64;
const RECORD_HEADER = 12;
const SKIP = 0xffffffff;

const align8 = (n: number): number => (n + 7) & ~7;

export class PacketRing {
  readonly words: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  readonly capacity: number;

  /** `capacity` bytes of records (a multiple of 8, at least 4 KiB, below 2^30). */
  static create(capacity: number): PacketRing {
    if (!Number.isInteger(capacity) || capacity < 4096 || capacity % 8 !== 0 || capacity >= 2 ** 30) {
      throw new RangeError(`a packet ring holds a multiple of 8 bytes from 4096 below 2^30, got ${capacity}`);
    }
    return new PacketRing(new SharedArrayBuffer(HEADER_BYTES + capacity));
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    const capacity = buffer.byteLength - HEADER_BYTES;
    if (capacity < 4096 || capacity % 8 !== 0) throw new RangeError(`not a packet ring: ${buffer.byteLength} bytes`);
    this.capacity = capacity;
    this.words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, HEADER_BYTES, capacity);
    this.view = new DataView(buffer, HEADER_BYTES, capacity);
  }

  /** Datagrams the producer dropped because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.words, DROPPED);
  }

  /** Bytes of records waiting. */
  get pending(): number {
    return (Atomics.load(this.words, HEAD) - Atomics.load(this.words, TAIL)) >>> 0;
  }

  /** The bell's count: wait on it (Atomics.waitAsync) with the value seen before looking. */
  get bell(): number {
    return Atomics.load(this.words, BELL);
  }

  /** Producer: whether a record of `length` bytes fits now. */
  fits(length: number): boolean {
    return this.skipFor(align8(RECORD_HEADER + length), Atomics.load(this.words, HEAD) >>> 0) >= 0;
  }

  /**
   * For a record of `need` bytes (padded) written at `head`: the bytes skipped to the start first
   * (0 unless it would cross the end), or -1 if it does not fit now.
   */
  private skipFor(need: number, head: number): number {
    const used = (head - (Atomics.load(this.words, TAIL) >>> 0)) >>> 0;
    const toEnd = this.capacity - (head % this.capacity);
    const skip = toEnd < need ? toEnd : 0;
    return need <= this.capacity && used + skip + need <= this.capacity ? skip : -1;
  }

  /**
   * Producer, blocking its thread: wait until a record of `length` bytes fits, for at most
   * `timeoutMs`. Returns whether it fits. (A pop wakes it.)
   */
  waitForRoom(length: number, timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const tail = Atomics.load(this.words, TAIL);
      if (this.fits(length)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.ring();
      Atomics.add(this.words, ROOM_WAITERS, 1);
      try {
        Atomics.wait(this.words, TAIL, tail, left);
      } finally {
        Atomics.sub(this.words, ROOM_WAITERS, 1);
      }
    }
  }

  /** Producer: copy one datagram in; false (and counted) if it does not fit. */
  push(bytes: Uint8Array, ip: number, port: number): boolean {
    const need = align8(RECORD_HEADER + bytes.length);
    const head = Atomics.load(this.words, HEAD) >>> 0;
    const skip = this.skipFor(need, head);
    if (skip < 0) {
      Atomics.add(this.words, DROPPED, 1);
      return false;
    }
    let at = head % this.capacity;
    if (skip > 0) {
      this.view.setUint32(at, SKIP, true);
      at = 0;
    }
    this.view.setUint32(at, bytes.length, true);
    this.view.setUint32(at + 4, ip >>> 0, true);
    this.view.setUint32(at + 8, port, true);
    this.data.set(bytes, at + RECORD_HEADER);
    Atomics.store(this.words, HEAD, (head + skip + need) | 0);
    return true;
  }

  /** Producer: wake the consumer (after one push or a batch). */
  ring(): void {
    Atomics.add(this.words, BELL, 1);
    // A consumer that starts waiting after this add sees the bell changed and does not sleep.
    if (Atomics.load(this.words, WAITERS) > 0) Atomics.notify(this.words, BELL);
  }

  /**
   * Consumer: hand every waiting datagram (at most `max`) to `each`, its bytes valid only during
   * the call, and free their space. Returns how many. A record that does not read back as one
   * (which only a broken producer could write) empties the ring rather than be parsed.
   */
  pop(each: (bytes: Uint8Array, ip: number, port: number) => void, max = Infinity): number {
    const head = Atomics.load(this.words, HEAD) >>> 0;
    let tail = Atomics.load(this.words, TAIL) >>> 0;
    let n = 0;
    try {
      while (tail !== head && n < max) {
        let at = tail % this.capacity;
        let len = this.view.getUint32(at, true);
        if (len === SKIP) {
          tail = (tail + this.capacity - at) >>> 0;
          at = 0;
          len = this.view.getUint32(0, true);
        }
        const need = align8(RECORD_HEADER + len);
        if (len === SKIP || at + need > this.capacity || ((head - tail) >>> 0) < need) {
          tail = head;
          break;
        }
        const ip = this.view.getUint32(at + 4, true);
        const port = this.view.getUint32(at + 8, true);
        tail = (tail + need) >>> 0;
        n++;
        each(this.data.subarray(at + RECORD_HEADER, at + RECORD_HEADER + len), ip, port);
      }
    } finally {
      Atomics.store(this.words, TAIL, tail | 0);
      if (n > 0 && Atomics.load(this.words, ROOM_WAITERS) > 0) Atomics.notify(this.words, TAIL);
    }
    return n;
  }

  /** Consumer: wait until the bell changes from `seen` (or `timeoutMs` passes). */
  async wait(seen: number, timeoutMs: number): Promise<void> {
    Atomics.add(this.words, WAITERS, 1);
    try {
      const r = Atomics.waitAsync(this.words, BELL, seen, timeoutMs);
      if (r.async) await r.value;
    } finally {
      Atomics.sub(this.words, WAITERS, 1);
    }
  }
}
