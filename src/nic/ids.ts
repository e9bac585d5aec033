// Number allocation for verbs objects: handles, QPNs (R5: a chosen number, kept across
// migration) and memory keys. Allocation is next-fit, so a freed number is reused as late as
// possible, and a number in use is never handed out twice.
import { VerbsError, VerbsErrorCode } from './errors.js';

export class IdAllocator {
  private readonly live = new Set<number>();
  private next: number;

  /** Numbers in [min, max] (inclusive). */
  constructor(readonly what: string, readonly min: number, readonly max: number) {
    this.next = min;
  }

  get size(): number {
    return this.live.size;
  }

  has(id: number): boolean {
    return this.live.has(id);
  }

  /** The next free number after the last one handed out, wrapping; ENOMEM when all are taken. */
  allocate(): number {
    const span = this.max - this.min + 1;
    if (this.live.size >= span) throw new VerbsError(VerbsErrorCode.NoResources, `no free ${this.what}`);
    let id = this.next;
    while (this.live.has(id)) id = id === this.max ? this.min : id + 1;
    this.live.add(id);
    this.next = id === this.max ? this.min : id + 1;
    return id;
  }

  /** Take a chosen number (a QPN kept across migration); EEXIST if it is in use. */
  reserve(id: number): number {
    if (!Number.isInteger(id) || id < this.min || id > this.max) {
      throw new VerbsError(VerbsErrorCode.InvalidArgument, `${this.what} ${id} outside [${this.min}, ${this.max}]`);
    }
    if (this.live.has(id)) throw new VerbsError(VerbsErrorCode.Exists, `${this.what} ${id} is in use`);
    this.live.add(id);
    return id;
  }

  release(id: number): void {
    if (!this.live.delete(id)) throw new VerbsError(VerbsErrorCode.NoSuchObject, `${this.what} ${id} is not allocated`);
  }

  /** Where the next allocation starts looking (saved with a device's state, R9). */
  get cursor(): number {
    return this.next;
  }

  /** Continue allocating from `next` (a restored device), so numbers are reused as late as before. */
  seek(next: number): void {
    if (!Number.isInteger(next) || next < this.min || next > this.max) {
      throw new VerbsError(VerbsErrorCode.InvalidArgument, `${this.what} cursor ${next} outside [${this.min}, ${this.max}]`);
    }
    this.next = next;
  }
}

/**
 * Memory keys (lkey/rkey) as IBTA builds them: a 24-bit index and an 8-bit tag. A freed index
 * comes back with the next tag, so a stale key held by a peer stops matching at once.
 */
export class KeyAllocator {
  private readonly indices: IdAllocator;
  private readonly tags = new Map<number, number>();

  constructor(maxKeys: number) {
    // Index 0 is never used, so key 0 (a common uninitialised value) is never valid.
    this.indices = new IdAllocator('memory key', 1, Math.min(maxKeys, 0xffffff));
  }

  allocate(): number {
    const index = this.indices.allocate();
    const tag = ((this.tags.get(index) ?? 0) + 1) & 0xff;
    this.tags.set(index, tag);
    return ((index << 8) | tag) >>> 0;
  }

  /** Take a chosen key (restoring a migrated MR keeps its keys). */
  reserve(key: number): number {
    this.indices.reserve(key >>> 8);
    this.tags.set(key >>> 8, key & 0xff);
    return key >>> 0;
  }

  isLive(key: number): boolean {
    return this.indices.has(key >>> 8) && this.tags.get(key >>> 8) === (key & 0xff);
  }

  release(key: number): void {
    if (!this.isLive(key)) throw new VerbsError(VerbsErrorCode.NoSuchObject, `memory key 0x${key.toString(16)} is not live`);
    this.indices.release(key >>> 8);
  }

  /** Index range, for a restore to check saved keys against. */
  get maxIndex(): number {
    return this.indices.max;
  }

  /**
   * The last tag of every index ever used, live or freed, and the allocation cursor: what a
   * restored device needs so the keys it hands out next never repeat a recent one (R9).
   */
  state(): { cursor: number; tags: [number, number][] } {
    return { cursor: this.indices.cursor, tags: [...this.tags].sort((a, b) => a[0] - b[0]) };
  }

  /** Restore tags and cursor on an allocator with no live keys (the keys are reserved after). */
  restoreState(s: { cursor: number; tags: readonly (readonly [number, number])[] }): void {
    if (this.indices.size !== 0) throw new VerbsError(VerbsErrorCode.Busy, 'memory keys are live');
    for (const [index, tag] of s.tags) {
      if (!Number.isInteger(index) || index < 1 || index > this.indices.max || !Number.isInteger(tag) || tag < 0 || tag > 0xff) {
        throw new VerbsError(VerbsErrorCode.InvalidArgument, `key tag ${tag} of index ${index} out of range`);
      }
    }
    this.indices.seek(s.cursor);
    this.tags.clear();
    for (const [index, tag] of s.tags) this.tags.set(index, tag);
  }
}
