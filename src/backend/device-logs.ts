// The dirty logs (R4) of a durable device, in a small shared memory of their own: the device's
// backend marks every write it and its provider make in `device` from its worker
// (DirtyLog.attach over the same placement), the guest's own writes on the driver's thread are
// marked in `cpu`, and a migration harvests both here. They are not in the device memory's arena
// because a backend allocates there as if it were the arena's only user (DeviceMemory.attach).
// Layout: the kernel module's static data at [0, WASM_DATA_BYTES), as in every memory the Wasm
// kernels run over, then the two logs.
import { Arena } from '../memory/arena.js';
import { WASM_DATA_BYTES, WASM_PAGE_BYTES } from '../memory/layout.js';
import { DirtyLog, type DirtyLogPlacement } from '../migration/dirty-log.js';
import { DIRTY_PAGE_BYTES } from '../migration/dirty-kernels.js';

/** Page numbers one harvest call hands back: small logs, small output buffers. */
const OUT_CAP = 4096;

/** What a backend needs to mark the device's log from its thread. */
export interface SharedLogSpec {
  memory: WebAssembly.Memory;
  placement: DirtyLogPlacement;
}

export class DeviceLogs {
  private constructor(
    readonly memory: WebAssembly.Memory,
    /** Writes of the device and its provider (marked in the backend's thread). */
    readonly device: DirtyLog,
    /** Writes of the guest (the driver's thread). */
    readonly cpu: DirtyLog,
  ) {}

  /** Two logs covering guest-physical [0, coverBytes). */
  static create(coverBytes: number): DeviceLogs {
    if (!Number.isSafeInteger(coverBytes) || coverBytes <= 0) throw new RangeError(`the logs must cover a positive number of bytes, got ${coverBytes}`);
    const bitmap = Math.ceil(coverBytes / DIRTY_PAGE_BYTES / 512) * 64;
    const each = bitmap + 64 + 64 + 4 * OUT_CAP + 128;
    const bytes = WASM_DATA_BYTES + 2 * each;
    const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const arena = new Arena(WASM_DATA_BYTES, pages * WASM_PAGE_BYTES - WASM_DATA_BYTES, 'dirty logs');
    const log = () => DirtyLog.create(memory, arena, coverBytes, { outCap: OUT_CAP });
    return new DeviceLogs(memory, log(), log());
  }

  /** The device log's memory and placement, for the backend (BackendSpec.dirtyLog). */
  get deviceSpec(): SharedLogSpec {
    return { memory: this.memory, placement: { ...this.device.placement } };
  }
}
