// A growable ring-buffer queue with indexed access: work queues look at their oldest entries
// and drop them from the front far more often than they grow.

export class Fifo<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 16) {
    this.items = new Array<T | undefined>(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  /** The i-th oldest entry, or undefined past the end. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.count) return undefined;
    return this.items[(this.head + i) % this.items.length];
  }

  push(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count++;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count--;
    return item;
  }

  clear(): void {
    this.items = new Array<T | undefined>(this.items.length);
    this.head = 0;
    this.count = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.at(i) as T;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.at(i);
    this.items = next;
    this.head = 0;
  }
}
