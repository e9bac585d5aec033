// The workload's one error type. A failed check is not an exception: it is recorded as a
// `WorkloadViolation` and the run goes on, so the summary can say how much went wrong. These
// errors are for misuse: bad configuration, a state blob that does not validate.

export enum WorkloadErrorCode {
  /** A configuration value is out of range or inconsistent with another. */
  BadConfig = 'BAD_CONFIG',
  /** A state blob is truncated, foreign, of another version, or inconsistent. */
  BadState = 'BAD_STATE',
  /** The operation does not fit the workload's current phase (start twice, resume a running one). */
  WrongPhase = 'WRONG_PHASE',
  /** Waiting for completions took longer than allowed. */
  Timeout = 'TIMEOUT',
}

export class WorkloadError extends Error {
  override readonly name = 'WorkloadError';
  constructor(readonly code: WorkloadErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}
