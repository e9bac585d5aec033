// The native layer's one error type. System calls that fail inside the addon throw Node-style
// system errors instead (message "syscall: ECODE (text)", with code, errno and syscall), which
// callers test with isSystemError; NativeError is for what the TypeScript side refuses.

/** Why a native operation could not be done. */
export enum NativeErrorCode {
  /** The addon is not built, failed to load, is stale, or was disabled (the reason says which). */
  Unavailable = 'UNAVAILABLE',
  /** An argument was refused before reaching the addon. */
  InvalidArgument = 'INVALID_ARGUMENT',
}

export class NativeError extends Error {
  override readonly name = 'NativeError';
  constructor(readonly code: NativeErrorCode, message: string) {
    super(`${code}: ${message}`);
  }
}

/** A system error thrown by the addon, as Node shapes its own. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** Whether `err` is a system error from the addon, optionally with the given code ("EBADF"). */
export function isSystemError(err: unknown, code?: string): err is SystemError {
  if (!(err instanceof Error)) return false;
  const e = err as Partial<SystemError>;
  return typeof e.code === 'string' && typeof e.errno === 'number' && typeof e.syscall === 'string' && (code === undefined || e.code === code);
}
