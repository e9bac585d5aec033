// Status codes returned by every Wasm kernel, and by its TypeScript twin.
//
// One source for both compilers: this file holds only integer constants, so asc reads it as
// AssemblyScript (i32 constants) and tsc as TypeScript. A kernel returns a count or offset >= 0 on
// success and one of these (< 0) on failure; src/wasm/status.ts names them for errors and logs.

/** The address range is not wholly inside one guest memory region. */
export const ST_OUT_OF_RANGE = -1;
/** Address plus length overflows 64 bits, or a length is too large for the 32-bit memory. */
export const ST_OVERFLOW = -2;
/** A descriptor chain revisits a descriptor, or is longer than the queue allows. */
export const ST_LOOP = -3;
/** An indirect descriptor points at another indirect table (virtio 1.2 2.7.5.3.1). */
export const ST_NESTED_INDIRECT = -4;
/** An indirect table's length is zero or not a multiple of 16 bytes. */
export const ST_BAD_INDIRECT_LEN = -5;
/** The driver's available index moved by more than the queue size. */
export const ST_AVAIL_JUMP = -6;
/** A descriptor index is outside the descriptor table. */
export const ST_BAD_INDEX = -7;
/** A device-readable descriptor follows a device-writable one (virtio 1.2 2.7.4.2). */
export const ST_READ_AFTER_WRITE = -8;
/** A chain's total length does not fit in 32 bits. */
export const ST_CHAIN_TOO_LONG = -9;
/** The output buffer given to the kernel is too small for the result. */
export const ST_NO_SPACE = -10;
/** A ring address is misaligned or the queue size is not valid for the ring format. */
export const ST_BAD_RING = -11;
/** A used buffer id does not name a chain the device holds. */
export const ST_BAD_ID = -12;
/** The access is not allowed by the memory registration's rights. */
export const ST_ACCESS = -13;
/** The key or handle does not name a live object. */
export const ST_BAD_KEY = -14;
/** The region table is full or the new region overlaps an existing one. */
export const ST_REGION_CONFLICT = -15;
/** A page of an on-demand-paging registration is not present: fault, then retry. */
export const ST_PAGE_FAULT = -16;
/** A pointer or length the kernel needs aligned (for atomic access) is not. */
export const ST_MISALIGNED = -17;
