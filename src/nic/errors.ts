// The verbs layer's one error type. Codes follow the errno values libibverbs returns for the
// same failures, so a driver can pass them through unchanged.

export enum VerbsErrorCode {
  /** An argument is malformed or out of range (EINVAL). */
  InvalidArgument = 'EINVAL',
  /** A handle or key names no live object of the right kind (ENOENT). */
  NoSuchObject = 'ENOENT',
  /** A device limit is reached (ENOMEM). */
  NoResources = 'ENOMEM',
  /** The object is still in use by another (EBUSY): a PD with MRs, a CQ with QPs. */
  Busy = 'EBUSY',
  /** A requested number (QPN, key) is already taken (EEXIST). */
  Exists = 'EEXIST',
  /** The provider cannot do this (EOPNOTSUPP): the ibverbs provider for most of R1–R9. */
  NotSupported = 'EOPNOTSUPP',
  /** Access rights do not allow the operation (EACCES). */
  AccessDenied = 'EACCES',
  /** The object is in an error state (EIO): a CQ that overran. */
  IoError = 'EIO',
}

export class VerbsError extends Error {
  override readonly name = 'VerbsError';
  constructor(readonly code: VerbsErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}

export function invalid(message: string): VerbsError {
  return new VerbsError(VerbsErrorCode.InvalidArgument, message);
}
