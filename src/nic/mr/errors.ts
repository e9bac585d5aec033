// The memory-registration layer's one error type: why a page table could not be built, changed
// or restored. Translation failures on the datapath are kernel status codes, not exceptions.

export enum MrErrorCode {
  /** Access flags outside MR_ACCESS_ALL, or a remote write/atomic right without LOCAL_WRITE. */
  BadAccess = 'BAD_ACCESS',
  /** Page shift other than 12 (4 KiB) or 21 (2 MiB). */
  BadPageShift = 'BAD_PAGE_SHIFT',
  /** A page address is not aligned to the page size or not a guest-physical address. */
  Misaligned = 'MISALIGNED',
  /** The page list does not cover [iova, iova+length) exactly. */
  PageCount = 'PAGE_COUNT',
  /** iova, length or size is not an integer, is zero, or iova+length reaches 2^53. */
  Overflow = 'OVERFLOW',
  /** A present page of a physical MR is not wholly guest memory. */
  NotGuestMemory = 'NOT_GUEST_MEMORY',
  /** The operation does not apply to this kind of table (physical vs all-memory). */
  WrongKind = 'WRONG_KIND',
  /** The table was disposed. */
  Disposed = 'DISPOSED',
  /** A page index is outside the table. */
  BadPage = 'BAD_PAGE',
  /** A saved state is malformed. */
  BadState = 'BAD_STATE',
  /** The device arena has no room for the table. */
  NoSpace = 'NO_SPACE',
}

export class MrError extends Error {
  override readonly name = 'MrError';
  constructor(readonly code: MrErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}
