// The device status field and feature negotiation every virtio device shares (virtio 1.2
// sections 2.1 and 3.1.1). The virtio-rdma device builds on this; so does any test device.

/** Device status bits (virtio 1.2 2.1). */
export const DeviceStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  NEEDS_RESET: 64,
  FAILED: 128,
} as const;

export class VirtioStatus {
  private statusBits = 0;
  private driverFeatures = 0n;
  /** Why NEEDS_RESET was set, for logs and tests. */
  resetReason: string | null = null;

  constructor(readonly deviceFeatures: bigint) {}

  get status(): number {
    return this.statusBits;
  }

  get features(): bigint {
    return this.driverFeatures;
  }

  get needsReset(): boolean {
    return (this.statusBits & DeviceStatus.NEEDS_RESET) !== 0;
  }

  get driverOk(): boolean {
    return (this.statusBits & DeviceStatus.DRIVER_OK) !== 0 && !this.needsReset;
  }

  has(bit: number): boolean {
    return (this.driverFeatures & (1n << BigInt(bit))) !== 0n;
  }

  /** The driver writes the features it accepts; only before FEATURES_OK. */
  setDriverFeatures(features: bigint): void {
    if (this.statusBits & DeviceStatus.FEATURES_OK) throw new Error('features are fixed once FEATURES_OK is set');
    this.driverFeatures = features;
  }

  /**
   * The driver writes the status. Clearing it (0) resets the device. FEATURES_OK is refused
   * (left clear, as virtio 3.1.1 step 6 expects the driver to re-read) if the driver accepted a
   * feature the device did not offer. Returns the status the driver will read back.
   */
  write(value: number): number {
    if (value === 0) {
      this.statusBits = 0;
      this.driverFeatures = 0n;
      this.resetReason = null;
      return 0;
    }
    let next = value & 0xff & ~DeviceStatus.NEEDS_RESET;
    if (next & DeviceStatus.FEATURES_OK && !(this.statusBits & DeviceStatus.FEATURES_OK)) {
      if ((this.driverFeatures & ~this.deviceFeatures) !== 0n) next &= ~DeviceStatus.FEATURES_OK;
    }
    this.statusBits = next | (this.statusBits & DeviceStatus.NEEDS_RESET);
    return this.statusBits;
  }

  /**
   * Take the status, features and reset reason a device had on another host (migration): the
   * caller checked them against this device's offer.
   */
  restore(status: number, driverFeatures: bigint, resetReason: string | null): void {
    if (!Number.isInteger(status) || status < 0 || status > 0xff) throw new RangeError(`device status ${status} is not a byte`);
    if ((driverFeatures & ~this.deviceFeatures) !== 0n) throw new RangeError('driver features the device does not offer');
    this.statusBits = status;
    this.driverFeatures = driverFeatures;
    this.resetReason = resetReason;
  }

  /** The device found the driver broke something: set NEEDS_RESET on this device only. */
  markNeedsReset(reason: string): void {
    if (!this.needsReset) this.resetReason = reason;
    this.statusBits |= DeviceStatus.NEEDS_RESET;
  }
}
