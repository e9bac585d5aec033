// The guest library's error types: a command the device refused (carrying the device's status
// code, docs/device-spec.md §6.1), and the library's own failures.
import { Cmd, RdmaStatus } from '../../device/abi.js';
import { statusName } from '../../device/errors.js';

export class RdmaCommandError extends Error {
  override readonly name = 'RdmaCommandError';
  constructor(readonly cmd: Cmd, readonly status: RdmaStatus, detail = '') {
    super(`${Cmd[cmd] ?? `command ${cmd}`} failed: ${statusName(status)}${detail === '' ? '' : ` (${detail})`}`);
  }
}

export enum GuestErrorCode {
  /** The device did not offer a feature the library needs (VERSION_1, RING_RESET). */
  Negotiation = 'NEGOTIATION',
  /** A ring has no room for the request. */
  RingFull = 'RING_FULL',
  /** The device did not answer in time. */
  Timeout = 'TIMEOUT',
  /** The device answered with something the spec does not allow. */
  Protocol = 'PROTOCOL',
  /** The device needs reset (DEVICE_NEEDS_RESET). */
  NeedsReset = 'NEEDS_RESET',
  /** Not available in this build. */
  Unsupported = 'UNSUPPORTED',
  /** The caller passed something the interface cannot carry. */
  InvalidArgument = 'INVALID_ARGUMENT',
  /** A saved driver state (migration) is malformed or inconsistent. */
  BadState = 'BAD_STATE',
  /** The driver cannot be saved now (a command is in flight). */
  Busy = 'BUSY',
}

export class GuestError extends Error {
  override readonly name = 'GuestError';
  constructor(readonly code: GuestErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}
