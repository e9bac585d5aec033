// 24-bit packet sequence numbers (IBTA 9.7.1): they wrap, so "before" and "after" are only
// meaningful within half the space. A PSN is ahead of another when it is less than 2^23 ahead.

export const PSN_BITS = 24;
export const PSN_MASK = 0xffffff;
/** Half the PSN space: the window within which two PSNs can be ordered. */
export const PSN_HALF = 0x800000;

/** psn + n modulo 2^24 (n may be negative). */
export function psnAdd(psn: number, n: number): number {
  return (psn + n) & PSN_MASK;
}

/** Signed difference a - b, in [-2^23, 2^23): positive when a is after b (at exactly 2^23 apart, -2^23 either way). */
export function psnDiff(a: number, b: number): number {
  return ((a - b) << 8) >> 8;
}

/** -1, 0 or 1 as a is before, equal to, or after b within the 2^23 window. */
export function psnCompare(a: number, b: number): number {
  return Math.sign(psnDiff(a, b));
}

/** Forward distance from `from` to `to` modulo 2^24, in [0, 2^24). */
export function psnDistance(from: number, to: number): number {
  return (to - from) & PSN_MASK;
}

/** True when psn lies in [start, start + count) modulo 2^24. */
export function psnInRange(psn: number, start: number, count: number): boolean {
  return psnDistance(start, psn) < count;
}

/** A valid PSN: an integer in [0, 2^24). */
export function isPsn(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= PSN_MASK;
}
