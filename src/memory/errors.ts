// The memory layer's one error type.

/** Why a guest memory access or a region change was refused. */
export enum MemoryErrorCode {
  /** The range is not wholly inside one guest region. */
  OutOfRange = 'OUT_OF_RANGE',
  /** Address plus length overflows, or a value is not a valid address or length. */
  Overflow = 'OVERFLOW',
  /** A new region overlaps an existing one, or the table is full. */
  RegionConflict = 'REGION_CONFLICT',
  /** No region starts at the given address. */
  NoSuchRegion = 'NO_SUCH_REGION',
  /** The guest RAM window or device arena has no room left. */
  NoSpace = 'NO_SPACE',
  /** The requested size needs more than 32-bit Wasm memory can address (memory64). */
  TooLarge = 'TOO_LARGE',
  /** A saved state (an allocator's, for migration) is inconsistent. */
  BadState = 'BAD_STATE',
}

export class MemoryError extends Error {
  override readonly name = 'MemoryError';
  constructor(readonly code: MemoryErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}
