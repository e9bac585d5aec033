// The device layer's one error type: a request refused with one of the spec's status codes
// (docs/device-spec.md §6.1). Command handlers throw it; the control queue turns it into the
// response status. Errors from the verbs layer map onto the same codes (their errno twins).
import { MemoryError } from '../memory/errors.js';
import { VerbsError, VerbsErrorCode } from '../nic/errors.js';
import { RdmaStatus } from './abi.js';

export const STATUS_NAMES: Record<RdmaStatus, string> = {
  [RdmaStatus.Ok]: 'OK',
  [RdmaStatus.InvalidArg]: 'INVALID_ARG',
  [RdmaStatus.NotSupported]: 'NOT_SUPPORTED',
  [RdmaStatus.NoResources]: 'NO_RESOURCES',
  [RdmaStatus.BadHandle]: 'BAD_HANDLE',
  [RdmaStatus.Busy]: 'BUSY',
  [RdmaStatus.Exists]: 'EXISTS',
  [RdmaStatus.AccessDenied]: 'ACCESS_DENIED',
  [RdmaStatus.Fault]: 'FAULT',
  [RdmaStatus.DeviceError]: 'DEVICE_ERROR',
};

export function statusName(status: number): string {
  return STATUS_NAMES[status as RdmaStatus] ?? `STATUS_${status}`;
}

export class DeviceError extends Error {
  override readonly name = 'DeviceError';
  constructor(readonly status: RdmaStatus, message: string) {
    super(`${statusName(status)}: ${message}`);
  }
}

export const invalidArg = (message: string): DeviceError => new DeviceError(RdmaStatus.InvalidArg, message);
export const notSupported = (message: string): DeviceError => new DeviceError(RdmaStatus.NotSupported, message);
export const badHandle = (message: string): DeviceError => new DeviceError(RdmaStatus.BadHandle, message);

const FROM_VERBS: Record<VerbsErrorCode, RdmaStatus> = {
  [VerbsErrorCode.InvalidArgument]: RdmaStatus.InvalidArg,
  [VerbsErrorCode.NoSuchObject]: RdmaStatus.BadHandle,
  [VerbsErrorCode.NoResources]: RdmaStatus.NoResources,
  [VerbsErrorCode.Busy]: RdmaStatus.Busy,
  [VerbsErrorCode.Exists]: RdmaStatus.Exists,
  [VerbsErrorCode.NotSupported]: RdmaStatus.NotSupported,
  [VerbsErrorCode.AccessDenied]: RdmaStatus.AccessDenied,
  // A provider I/O error (polling an overrun CQ) is the device's failure, not the guest's.
  [VerbsErrorCode.IoError]: RdmaStatus.DeviceError,
};

/**
 * The status a failure maps to (§6.1): the device's own errors keep theirs, verbs errors map by
 * errno, a guest memory error in a command is FAULT, anything else is the host's fault.
 */
export function statusOf(err: unknown): RdmaStatus {
  if (err instanceof DeviceError) return err.status;
  if (err instanceof VerbsError) return FROM_VERBS[err.code] ?? RdmaStatus.DeviceError;
  if (err instanceof MemoryError) return RdmaStatus.Fault;
  return RdmaStatus.DeviceError;
}
