// Deterministic test bytes: a message's contents follow from its seed, so either process can
// fill or check them without shipping the bytes across.
export function pattern(seed: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
