// Copying bytes between typed arrays on the data path. TypedArray.prototype.set needs a subarray
// view of the source, an object per copy; for the short pieces the device moves per message (a
// WQE header, an SGE list, a CQE, a small payload) a plain loop costs less. Measured: one VM pair's
// 64-byte WRITEs went from 60 k to 70 k messages a second when the chain copies switched
// (docs/worker-pool.md, "Measured"). Source and destination must not overlap.

/** Pieces up to this many bytes are copied by a loop. */
export const SMALL_COPY_BYTES = 64;

/** Copy `n` bytes from src[srcOff..] to dst[dstOff..]. */
export function copyBytes(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, n: number): void {
  if (n <= SMALL_COPY_BYTES) {
    for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i];
  } else {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
  }
}
