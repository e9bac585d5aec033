// The shared control block of one device backend: host memory (a SharedArrayBuffer the guest
// never sees) that outlives the worker thread running the device. It holds
//   - the ownership word: the thread that runs the device, taken with Atomics.compareExchange,
//     so no two threads ever run one device; a backend that finds it taken refuses to start;
//   - a mirror of the device status and where the device's doorbells are in guest memory;
//   - the call area: one synchronous call at a time from the driver to the backend (rpc.ts);
//   - the journal: two slots for the device's committed state (journal.ts).
// Layout (little-endian 32-bit words, then byte areas):
//   0 magic  1 layout version  2 owner thread + 1 (0: none)  3 epoch (backends started)
//   4 device status  5 journal generation  6 call state  7 call length  8 call sequence
//   9 doorbell block offset (+1; 0: none yet)  10 doorbell block queues  11 restarts
//   at 64: the call area (CALL_BYTES); then slot 0 and slot 1, each SLOT_HEADER_BYTES + capacity.
import { BackendError, BackendErrorCode } from './errors.js';

const MAGIC = 0x4a445256; // "VRDJ"
const LAYOUT_VERSION = 1;
export const W = {
  magic: 0, version: 1, owner: 2, epoch: 3, status: 4, generation: 5, callState: 6, callLength: 7, callSeq: 8,
  bellsBase: 9, bellsQueues: 10, restarts: 11,
} as const;
const HEADER_BYTES = 64;
/** Bytes of one call or its answer. */
export const CALL_BYTES = 64 * 1024;
/** A slot's own header: generation, payload length, CRC-32 of the payload. */
export const SLOT_HEADER_BYTES = 16;
/** Default capacity of a journal slot. */
export const DEFAULT_SLOT_BYTES = 4 * 1024 * 1024;

export class ControlBlock {
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
  readonly slotBytes: number;

  private constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.bytes = new Uint8Array(buffer);
    const rest = buffer.byteLength - HEADER_BYTES - CALL_BYTES;
    this.slotBytes = Math.floor(rest / 2) - SLOT_HEADER_BYTES;
  }

  /** A new block whose journal slots hold `slotBytes` each. */
  static create(slotBytes = DEFAULT_SLOT_BYTES): ControlBlock {
    if (!Number.isInteger(slotBytes) || slotBytes < 4096 || slotBytes % 8 !== 0) throw new RangeError(`slotBytes must be a multiple of 8 of at least 4096, got ${slotBytes}`);
    const block = new ControlBlock(new SharedArrayBuffer(HEADER_BYTES + CALL_BYTES + 2 * (SLOT_HEADER_BYTES + slotBytes)));
    Atomics.store(block.words, W.version, LAYOUT_VERSION);
    Atomics.store(block.words, W.magic, MAGIC);
    return block;
  }

  /** The block in `buffer` (sent to another thread); BackendError BAD_JOURNAL if it is not one. */
  static attach(buffer: unknown): ControlBlock {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES + CALL_BYTES + 2 * (SLOT_HEADER_BYTES + 4096)) {
      throw new BackendError(BackendErrorCode.BadJournal, 'a control block is a SharedArrayBuffer of at least the header, call area and two slots');
    }
    const block = new ControlBlock(buffer);
    if (Atomics.load(block.words, W.magic) !== MAGIC || Atomics.load(block.words, W.version) !== LAYOUT_VERSION) {
      throw new BackendError(BackendErrorCode.BadJournal, 'not a device backend control block of this version');
    }
    return block;
  }

  load(word: number): number {
    return Atomics.load(this.words, word);
  }

  store(word: number, value: number): void {
    Atomics.store(this.words, word, value);
  }

  /** Offset of the call area. */
  get callOff(): number {
    return HEADER_BYTES;
  }

  /** Offset of journal slot `i` (its header; the payload follows). */
  slotOff(i: 0 | 1): number {
    return HEADER_BYTES + CALL_BYTES + i * (SLOT_HEADER_BYTES + this.slotBytes);
  }

  // ---- ownership ------------------------------------------------------------------------------

  /** The thread that owns the device, or null. */
  get owner(): number | null {
    const v = this.load(W.owner);
    return v === 0 ? null : v - 1;
  }

  /** Take the device for thread `threadId`; BackendError NOT_OWNER if another thread has it. */
  take(threadId: number): number {
    const was = Atomics.compareExchange(this.words, W.owner, 0, threadId + 1);
    if (was !== 0) throw new BackendError(BackendErrorCode.NotOwner, `the device is owned by thread ${was - 1}`);
    return Atomics.add(this.words, W.epoch, 1) + 1;
  }

  /** Whether `threadId` owns the device now. */
  owns(threadId: number): boolean {
    return this.load(W.owner) === threadId + 1;
  }

  /** Give the device up (its owner), or clear a dead owner's word (the supervisor). True if it was `threadId`'s. */
  release(threadId: number): boolean {
    return Atomics.compareExchange(this.words, W.owner, threadId + 1, 0) === threadId + 1;
  }

  // ---- what the driver side reads ---------------------------------------------------------------

  /** Where the device's doorbells are in its memory, once a backend has built them. */
  get doorbells(): { base: number; numQueues: number } | null {
    const base = this.load(W.bellsBase);
    return base === 0 ? null : { base: base - 1, numQueues: this.load(W.bellsQueues) };
  }

  setDoorbells(base: number, numQueues: number): void {
    this.store(W.bellsQueues, numQueues);
    this.store(W.bellsBase, base + 1);
  }
}
