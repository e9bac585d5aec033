// The state format's one error type (docs/state-format.md, "Errors"): every refusal of a saved
// device state — by the container reader, a record decoder, or a restore that checks the state
// against its destination — carries one of these codes, so a caller can tell a damaged buffer
// from a foreign one from one that does not fit where it is being restored.

export enum StateErrorCode {
  /** The buffer does not start with the format's magic: not a vrdma state at all. */
  BadMagic = 'BAD_MAGIC',
  /** A format major version this reader does not understand. */
  BadVersion = 'BAD_VERSION',
  /** A state of another kind (a provider's state handed to a device, or the reverse). */
  BadKind = 'BAD_KIND',
  /** The CRC-32 over the buffer does not match the header's: the bytes were damaged. */
  BadChecksum = 'BAD_CHECKSUM',
  /** The buffer, a record or a field ends before its declared length. */
  Truncated = 'TRUNCATED',
  /** A length that is not truncation: trailing bytes, a header of the wrong size. */
  BadLength = 'BAD_LENGTH',
  /** A record whose fields are malformed or out of range by themselves. */
  BadRecord = 'BAD_RECORD',
  /** Records that do not agree: a reference to no object, a duplicate, a count that disagrees. */
  Inconsistent = 'INCONSISTENT',
  /** A sound state that does not fit this destination: its limits, address, MTU or guest RAM. */
  Incompatible = 'INCOMPATIBLE',
  /** Restoring into a provider or device that already holds objects. */
  NotEmpty = 'NOT_EMPTY',
  /** The destination ran out of room while building (device arena); nothing was kept. */
  NoResources = 'NO_RESOURCES',
  /** Saving now would capture a half-done step (e.g. from inside the device's own pass). */
  Busy = 'BUSY',
}

export const STATE_ERROR_TEXT: Record<StateErrorCode, string> = {
  [StateErrorCode.BadMagic]: 'not a vrdma state buffer',
  [StateErrorCode.BadVersion]: 'unsupported state format version',
  [StateErrorCode.BadKind]: 'state of another kind',
  [StateErrorCode.BadChecksum]: 'checksum mismatch',
  [StateErrorCode.Truncated]: 'truncated state',
  [StateErrorCode.BadLength]: 'bad length',
  [StateErrorCode.BadRecord]: 'malformed record',
  [StateErrorCode.Inconsistent]: 'inconsistent records',
  [StateErrorCode.Incompatible]: 'state does not fit this destination',
  [StateErrorCode.NotEmpty]: 'destination is not empty',
  [StateErrorCode.NoResources]: 'out of resources while restoring',
  [StateErrorCode.Busy]: 'cannot save now',
};

export class StateError extends Error {
  override readonly name = 'StateError';
  constructor(readonly code: StateErrorCode, detail: string) {
    super(`${code} (${STATE_ERROR_TEXT[code]}): ${detail}`);
  }
}

export const badRecord = (detail: string): StateError => new StateError(StateErrorCode.BadRecord, detail);
export const inconsistent = (detail: string): StateError => new StateError(StateErrorCode.Inconsistent, detail);
export const incompatible = (detail: string): StateError => new StateError(StateErrorCode.Incompatible, detail);
