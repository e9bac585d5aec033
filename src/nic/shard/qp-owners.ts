// Ownership words: which shard runs each QP of a device, one 32-bit word per QP in shared memory
// that the device's thread and every shard read, changed only with Atomics.compareExchange (the
// issue's "ownership word"). A word holds the QPN (24 bits) and its owner (8 bits: shard + 1, or
// MOVING while the QP is between shards), at slot QPN mod OWNER_SLOTS; the facade gives no two live
// QPs the same slot. A QP changes hands only by its owner giving it up (owner -> MOVING, as it
// saves the QP's state and lets it go) and another shard taking it (MOVING -> itself, as it loads
// that state): two shards never hold one QP running, and a move that loses its race fails.
export const OWNER_SLOTS = 65536;
export const MOVING = 0xff;

const wordOf = (qpn: number, owner: number): number => ((qpn << 8) | owner) | 0;

export class QpOwners {
  readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(OWNER_SLOTS * 4)) {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength !== OWNER_SLOTS * 4) throw new RangeError('not an ownership table');
    this.words = new Int32Array(buffer);
  }

  get buffer(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  private slot(qpn: number): number {
    return qpn % OWNER_SLOTS;
  }

  /** The shard that owns `qpn`, 'moving', or null if no word names it. */
  owner(qpn: number): number | 'moving' | null {
    const w = Atomics.load(this.words, this.slot(qpn));
    if (w === 0 || w >>> 8 !== qpn) return null;
    const o = w & 0xff;
    return o === MOVING ? 'moving' : o - 1;
  }

  /** Whether `qpn`'s slot is free (or already its own). */
  free(qpn: number): boolean {
    const w = Atomics.load(this.words, this.slot(qpn));
    return w === 0 || w >>> 8 === qpn;
  }

  /** A new QP on `shard`: its word set from empty. False if the slot holds another QP. */
  claim(qpn: number, shard: number): boolean {
    const was = Atomics.compareExchange(this.words, this.slot(qpn), 0, wordOf(qpn, shard + 1));
    return was === 0 || was === wordOf(qpn, shard + 1);
  }

  /** The QP is gone: its word cleared, whoever held it. */
  clear(qpn: number): void {
    const s = this.slot(qpn);
    const w = Atomics.load(this.words, s);
    if (w >>> 8 === qpn) Atomics.compareExchange(this.words, s, w, 0);
  }

  /** `shard` gives `qpn` up to be moved: owner -> MOVING. False if `shard` does not own it. */
  giveUp(qpn: number, shard: number): boolean {
    return Atomics.compareExchange(this.words, this.slot(qpn), wordOf(qpn, shard + 1), wordOf(qpn, MOVING)) === wordOf(qpn, shard + 1);
  }

  /** `shard` takes `qpn` on its way between shards: MOVING -> shard. False if it is not moving. */
  take(qpn: number, shard: number): boolean {
    return Atomics.compareExchange(this.words, this.slot(qpn), wordOf(qpn, MOVING), wordOf(qpn, shard + 1)) === wordOf(qpn, MOVING);
  }
}
