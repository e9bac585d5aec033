// Checked access to guest RAM by guest-physical address. This is what the device and the guest
// driver library use; it says nothing about how regions are provided. Every access must lie
// wholly inside one region, else MemoryError; nothing outside the guest's regions is touched.
// A GuestMemory may carry a write log (R4): its write, fill and writeUxx calls mark what they
// wrote there. The simulated guest writes through one that logs to the VM's vCPU log.
import { statusName } from '../wasm/status.js';
import { MemoryError, MemoryErrorCode } from './errors.js';
import { type Gpa, gpaHex } from './gpa.js';
import type { MemoryLayout } from './layout.js';
import { RegionTable } from './region-table.js';
import { NO_WRITE_LOG, type WriteLog } from './write-log.js';

export class GuestMemory {
  readonly regions: RegionTable;
  /** The whole shared memory, for callers holding an offset from translate(). */
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(readonly memory: WebAssembly.Memory, readonly layout: MemoryLayout, readonly log: WriteLog = NO_WRITE_LOG) {
    this.bytes = new Uint8Array(memory.buffer);
    this.view = new DataView(memory.buffer);
    this.regions = new RegionTable(memory.buffer, layout.regionTableOff);
  }

  /** The same memory, its writes marked in `log`. */
  withLog(log: WriteLog): GuestMemory {
    return new GuestMemory(this.memory, this.layout, log);
  }

  /** Writers that store through views (ring drivers) say here what they wrote. */
  wrote(address: number, len: number): void {
    if (this.log.enabled) this.log.mark(address, len);
  }

  /** Offset in the shared memory of [address, address+len); throws if not inside one region. */
  translate(address: Gpa, len: number): number {
    const off = this.regions.lookup(address, len);
    if (off < 0) {
      const code = statusName(off) === 'OVERFLOW' ? MemoryErrorCode.Overflow : MemoryErrorCode.OutOfRange;
      throw new MemoryError(code, `guest range ${gpaHex(address)}+${len} is not inside one region`);
    }
    return off;
  }

  /** Like translate() but returns a negative status instead of throwing (hot callers). */
  tryTranslate(address: number, len: number): number {
    return this.regions.lookup(address, len);
  }

  /** A view of guest bytes [address, address+len) — shares memory, no copy. */
  slice(address: Gpa, len: number): Uint8Array {
    const off = this.translate(address, len);
    return this.bytes.subarray(off, off + len);
  }

  read(address: Gpa, dst: Uint8Array): void {
    const off = this.translate(address, dst.length);
    dst.set(this.bytes.subarray(off, off + dst.length));
  }

  write(address: Gpa, src: Uint8Array): void {
    const off = this.translate(address, src.length);
    this.bytes.set(src, off);
    if (this.log.enabled) this.log.mark(address, src.length);
  }

  fill(address: Gpa, len: number, value: number): void {
    const off = this.translate(address, len);
    this.bytes.fill(value, off, off + len);
    if (this.log.enabled) this.log.mark(address, len);
  }

  readU8(address: Gpa): number {
    return this.view.getUint8(this.translate(address, 1));
  }
  readU16(address: Gpa): number {
    return this.view.getUint16(this.translate(address, 2), true);
  }
  readU32(address: Gpa): number {
    return this.view.getUint32(this.translate(address, 4), true);
  }
  /** A u64 as a number; refuses values at or above 2^53 rather than rounding them. */
  readU64(address: Gpa): number {
    const off = this.translate(address, 8);
    const value = this.view.getUint32(off, true) + this.view.getUint32(off + 4, true) * 2 ** 32;
    if (!Number.isSafeInteger(value)) throw new MemoryError(MemoryErrorCode.Overflow, `u64 at ${gpaHex(address)} exceeds 2^53`);
    return value;
  }
  writeU8(address: Gpa, value: number): void {
    this.view.setUint8(this.translate(address, 1), value);
    if (this.log.enabled) this.log.mark(address, 1);
  }
  writeU16(address: Gpa, value: number): void {
    this.view.setUint16(this.translate(address, 2), value, true);
    if (this.log.enabled) this.log.mark(address, 2);
  }
  writeU32(address: Gpa, value: number): void {
    this.view.setUint32(this.translate(address, 4), value, true);
    if (this.log.enabled) this.log.mark(address, 4);
  }
  writeU64(address: Gpa, value: number): void {
    const off = this.translate(address, 8);
    this.view.setUint32(off, value % 2 ** 32, true);
    this.view.setUint32(off + 4, Math.floor(value / 2 ** 32), true);
    if (this.log.enabled) this.log.mark(address, 8);
  }
}
