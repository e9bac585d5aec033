// The device journal: the last committed state of a device, in two slots of its control block
// (control-block.ts), so that a backend started after the one running the device died can take
// the device up exactly where anyone outside last saw it. A commit writes the slot the current
// generation does not name (header: generation, length, CRC-32 of the payload), then publishes
// the new generation with one Atomics.store: a thread killed in the middle of a commit leaves the
// previous entry whole. Reading checks the slot against the published generation, its length
// against the slot, and the CRC; what does not check out is refused (BackendError BAD_JOURNAL):
// an older entry is never taken instead, because peers and the guest have seen what came after it.
import { crc32Update } from '../nic/roce/crc32.js';
import { type ControlBlock, SLOT_HEADER_BYTES, W } from './control-block.js';
import { BackendError, BackendErrorCode } from './errors.js';

export class Journal {
  private readonly view: DataView;

  constructor(readonly block: ControlBlock) {
    this.view = new DataView(block.buffer);
  }

  /** Entries committed so far (0: none). */
  get generation(): number {
    return this.block.load(W.generation) >>> 0;
  }

  /** Bytes one entry may hold. */
  get capacity(): number {
    return this.block.slotBytes;
  }

  /**
   * Commit the concatenation of `chunks` as the next entry and return its generation. The chunks
   * are copied straight into the slot (no joined copy first). BackendError JOURNAL_FULL if they
   * do not fit (nothing is changed then).
   */
  commit(...chunks: Uint8Array[]): number {
    let len = 0;
    for (const c of chunks) len += c.length;
    if (len > this.capacity) {
      throw new BackendError(BackendErrorCode.JournalFull, `a device state of ${len} bytes does not fit a ${this.capacity}-byte journal slot`);
    }
    // Generation 0 means "nothing committed": after 2^32 - 1 comes 2, which keeps the slots alternating.
    const gen = this.generation;
    const next = gen === 0xffffffff ? 2 : gen + 1;
    const off = this.block.slotOff((next & 1) as 0 | 1);
    let at = off + SLOT_HEADER_BYTES;
    for (const c of chunks) {
      this.block.bytes.set(c, at);
      at += c.length;
    }
    this.view.setUint32(off, next, true);
    this.view.setUint32(off + 4, len, true);
    this.view.setUint32(off + 8, crc32Update(this.block.bytes, 0, off + SLOT_HEADER_BYTES, len), true);
    this.block.store(W.generation, next | 0);
    return next;
  }

  /** The last committed entry (a copy), or null if nothing was committed; BAD_JOURNAL if it does not check. */
  latest(): { generation: number; payload: Uint8Array } | null {
    const gen = this.generation;
    if (gen === 0) return null;
    const off = this.block.slotOff((gen & 1) as 0 | 1);
    const bad = (why: string) => new BackendError(BackendErrorCode.BadJournal, `journal entry ${gen}: ${why}`);
    if (this.view.getUint32(off, true) !== gen) throw bad(`its slot holds entry ${this.view.getUint32(off, true)}`);
    const len = this.view.getUint32(off + 4, true);
    if (len > this.capacity) throw bad(`length ${len} exceeds the ${this.capacity}-byte slot`);
    const payload = this.block.bytes.slice(off + SLOT_HEADER_BYTES, off + SLOT_HEADER_BYTES + len);
    if (crc32Update(payload, 0, 0, len) !== this.view.getUint32(off + 8, true)) throw bad('CRC mismatch');
    return { generation: gen, payload };
  }
}
