// The device backend's one error type (src/backend): what the shared control block, the journal
// and the call channel between a driver and its backend refuse.

export enum BackendErrorCode {
  /** The control block or a journal entry does not read back as written (damaged or not ours). */
  BadJournal = 'BAD_JOURNAL',
  /** A device state does not fit in a journal slot. */
  JournalFull = 'JOURNAL_FULL',
  /** Another backend owns the device (its ownership word), or this one no longer does. */
  NotOwner = 'NOT_OWNER',
  /** A call to the backend got no answer in time (it is being replaced, or hung). */
  Timeout = 'TIMEOUT',
  /** A call or its answer is malformed or too large for the call area. */
  BadCall = 'BAD_CALL',
  /** The backend stopped while it ran a call: the call may or may not have taken effect. */
  Interrupted = 'INTERRUPTED',
  /** The backend pool is closed, or the device was closed. */
  Closed = 'CLOSED',
  /** Every worker runs as many devices as it may (workers × devicesPerWorker). */
  Full = 'FULL',
}

export class BackendError extends Error {
  override readonly name = 'BackendError';

  constructor(readonly code: BackendErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}
