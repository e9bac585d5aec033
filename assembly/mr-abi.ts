// Memory-registration constants: the one definition, for the Wasm kernel (mr.ts) and for
// TypeScript (src/nic/mr). Like status.ts this file holds only integer constants, so asc reads
// it as AssemblyScript and tsc as TypeScript. The page table layout is described in mr.ts.

// ---- Access rights --------------------------------------------------------------------------
// The values of the verbs API (ibv_access_flags), so a guest's access word passes unchanged.
// Local read is always allowed and has no bit.

/** The device may write the MR for the local QP (receive, READ response, atomic result). */
export const MR_LOCAL_WRITE = 1;
/** A peer may RDMA WRITE into the MR. */
export const MR_REMOTE_WRITE = 2;
/** A peer may RDMA READ from the MR. */
export const MR_REMOTE_READ = 4;
/** A peer may run compare-and-swap / fetch-and-add on the MR. */
export const MR_REMOTE_ATOMIC = 8;
/** Every right a registration can hold; other bits are refused. */
export const MR_ACCESS_ALL = 15;
/**
 * Registration flag, not a right: the MR pages on demand (R3). A table records it in its header
 * flags and never among its rights, so no access can ask for it.
 */
export const MR_ON_DEMAND = 64;
/** Rights whose use writes memory: with them, a hole of an all-memory MR maps to the sink page. */
export const MR_ACCESS_WRITES = 11;

// ---- Page table header (byte offsets) -------------------------------------------------------

export const MR_TABLE_MAGIC = 0x5450524d; // "MRPT"
export const MR_KIND_PHYSICAL = 0;
export const MR_KIND_ALL_MEMORY = 1;
/** Header flag: an on-demand-paging table, whose pages start absent and fault in (R3). */
export const MR_TABLE_ON_DEMAND = 1;

export const MR_HEADER_BYTES = 64;
export const MR_H_MAGIC = 0;
export const MR_H_KIND = 4;
export const MR_H_IOVA = 8;
export const MR_H_LENGTH = 16;
export const MR_H_PAGE_SHIFT = 24;
export const MR_H_PAGE_COUNT = 28;
export const MR_H_ACCESS = 32;
export const MR_H_FLAGS = 36;
export const MR_H_ZERO_PAGE = 40;
export const MR_H_SINK_PAGE = 44;
export const MR_H_REGION_TABLE = 48;
export const MR_H_ENTRIES = 52;
export const MR_H_GENERATION = 56;

// ---- Page entries and segments --------------------------------------------------------------

export const MR_PTE_BYTES = 8;
/** Entry bit 0: the page is present; clear, an access to it faults (ODP). */
export const MR_PTE_PRESENT = 1;
/** Segments have the chain record format of src/virtio/chain.ts. */
export const MR_SEGMENT_BYTES = 16;
/** A segment into the zero or sink page has gpa 2^64 - 1: both of its 32-bit halves are this. */
export const MR_NO_GPA_WORD = -1;
/** Bytes of the fault record written at `out` with ST_PAGE_FAULT. */
export const MR_FAULT_BYTES = 16;
