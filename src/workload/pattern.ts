// Deterministic payloads: the bytes of every message follow from (seed, side, QP, stream, seq),
// so the sender can produce them, the receiver can check them and the reference model can
// predict memory without any bytes crossing between processes.

/** Which kind of region a payload belongs to. */
export enum Stream {
  Write = 1,
  Send = 2,
  Read = 3,
}

/** A 32-bit key for one payload (the murmur3 finalizer over the mixed inputs). */
export function payloadKey(seed: number, side: number, qp: number, stream: Stream, seq: number): number {
  let h = (seed ^ Math.imul(side + 1, 0x9e3779b1) ^ Math.imul(qp + 1, 0x85ebca6b) ^ Math.imul(stream, 0xc2b2ae35)) >>> 0;
  h = (h ^ Math.imul(seq + 1, 0x27d4eb2f)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0 || 1;
}

/** Fill `out` with the payload of `key` (xorshift32, four bytes per step, little-endian). */
export function fillPayload(out: Uint8Array, key: number): void {
  let x = key >>> 0 || 1;
  const words = out.length >>> 2;
  for (let w = 0; w < words; w++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const i = w << 2;
    out[i] = x & 0xff;
    out[i + 1] = (x >>> 8) & 0xff;
    out[i + 2] = (x >>> 16) & 0xff;
    out[i + 3] = (x >>> 24) & 0xff;
  }
  for (let i = words << 2; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
}

/** The first index where `have` differs from the payload of `key`, or -1. */
export function findPayloadMismatch(have: Uint8Array, key: number, scratch: Uint8Array): number {
  const want = scratch.subarray(0, have.length);
  fillPayload(want, key);
  for (let i = 0; i < have.length; i++) if (have[i] !== want[i]) return i;
  return -1;
}
