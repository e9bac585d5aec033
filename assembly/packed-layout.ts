// Byte layouts of the packed virtqueue (virtio 1.2 section 2.8), shared by the Wasm kernels
// (assembly/packed-ring.ts) and their TypeScript twin (src/virtio/packed-twin.ts).
//
// Like status.ts this file holds only integer constants, so asc reads it as AssemblyScript and
// tsc as TypeScript: one source for both engines.
//
// ---- Queue block: the device's state of one packed queue, 64 bytes in the device arena ----
//   0  u32 size              queue size, 1..32768 (2.8: "up to 2^15 entries")
//   4  u32 features          PQ_FEATURE_* bits the driver negotiated
//   8  u32 descOff           memory offset of the descriptor ring (16 * size bytes)
//   12 u32 driverEventOff    memory offset of the driver event suppression area (read by the device)
//   16 u32 deviceEventOff    memory offset of the device event suppression area (written by the device)
//   20 u32 regionTableOff    memory offset of the guest region table (assembly/region.ts)
//   24 u16 nextAvail         ring slot the device polls for the next available chain
//   26 u16 availWrap         wrap counter expected at nextAvail (2.8.1; starts at 1)
//   28 u16 nextUsed          ring slot the next used descriptor goes to
//   30 u16 usedWrap          the Device Ring Wrap Counter (2.8.1; starts at 1)
//   32 u32 inflightSlots     ring slots popped but not yet used; nextUsed + inflight = nextAvail
//   36 u16 signalSlot        used position at the last notification check (nextUsed then)
//   38 u16 signalWrap        ... and its wrap counter
//   40 u32 signalValid       0 until the first check: the first DESC-mode check always notifies
//   44 .. 63                 reserved, zero
// The three ring offsets are translated from guest-physical addresses once, when the queue is
// set up (PackedQueue.fromState checks each part lies wholly inside one region).

export const PQ_SIZE = 0;
export const PQ_FEATURES = 4;
export const PQ_DESC_OFF = 8;
export const PQ_DRIVER_EVENT_OFF = 12;
export const PQ_DEVICE_EVENT_OFF = 16;
export const PQ_REGION_TABLE_OFF = 20;
export const PQ_NEXT_AVAIL = 24;
export const PQ_AVAIL_WRAP = 26;
export const PQ_NEXT_USED = 28;
export const PQ_USED_WRAP = 30;
export const PQ_INFLIGHT = 32;
export const PQ_SIGNAL_SLOT = 36;
export const PQ_SIGNAL_WRAP = 38;
export const PQ_SIGNAL_VALID = 40;
export const PQ_BLOCK_BYTES = 64;

/** VIRTIO_F_EVENT_IDX (feature 29) was negotiated: RING_EVENT_FLAGS_DESC is valid. */
export const PQ_FEATURE_EVENT_IDX = 1;
/** VIRTIO_F_INDIRECT_DESC (feature 28) was negotiated. */
export const PQ_FEATURE_INDIRECT = 2;

/** Largest packed queue (2.8). */
export const PQ_MAX_SIZE = 32768;

// ---- struct pvirtq_desc (2.8.13), 16 bytes ----
export const PDESC_BYTES = 16;
export const PDESC_ADDR = 0; // le64
export const PDESC_LEN = 8; // le32
export const PDESC_ID = 12; // le16 buffer id
export const PDESC_FLAGS = 14; // le16

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_DESC_F_AVAIL = 0x80;
export const VIRTQ_DESC_F_USED = 0x8000;

// ---- struct pvirtq_event_suppress (2.8.14), 4 bytes, 4-aligned ----
// Read or written as one 32-bit word: bits 0..14 desc_event_off, bit 15 desc_event_wrap,
// bits 16..17 desc_event_flags.
export const EVENT_OFF_WRAP = 0; // le16
export const EVENT_FLAGS = 2; // le16
export const EVENT_BYTES = 4;

export const RING_EVENT_FLAGS_ENABLE = 0;
export const RING_EVENT_FLAGS_DISABLE = 1;
/** Only with VIRTIO_F_EVENT_IDX; without it the device treats DESC (and reserved 3) as ENABLE. */
export const RING_EVENT_FLAGS_DESC = 2;

// ---- Used element, the input of packedPushUsed: 8 bytes ----
//   0 u16 id (buffer id)   2 u16 descCount (ring slots the chain took)   4 u32 len (bytes written)
export const PUSED_ID = 0;
export const PUSED_DESC_COUNT = 2;
export const PUSED_LEN = 4;
export const PUSED_BYTES = 8;
