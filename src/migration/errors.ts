// The migration coordinator's one error type. Every way a migration can fail has a code, so the
// host agent (and the report) can say which side gave up and why.

export enum MigrationErrorCode {
  /** The peer speaks another protocol version, or not this protocol at all. */
  Version = 'VERSION',
  /** A frame carried a type number this protocol does not define. */
  BadType = 'BAD_TYPE',
  /** A frame announced a length above the limit. */
  Oversized = 'OVERSIZED',
  /** The stream ended in the middle of a frame, or a body is shorter than its type needs. */
  ShortFrame = 'SHORT_FRAME',
  /** A body does not parse (bad counts, trailing bytes, reserved bits set). */
  Malformed = 'MALFORMED',
  /** A message the protocol does not allow at this point of the migration. */
  Order = 'ORDER',
  /** The peer closed the connection or the socket failed. */
  Closed = 'CLOSED',
  /** No message from the peer within the deadline. */
  Timeout = 'TIMEOUT',
  /** The peer gave up and said why (an ABORT message). */
  PeerAbort = 'PEER_ABORT',
  /** What the source asked for does not fit this destination (RAM size, region table). */
  Refused = 'REFUSED',
  /** A local step of the switchover failed (suspend, save, restore, address move). */
  Switchover = 'SWITCHOVER',
  /** The VM cannot be migrated as it is (a capability the provider lacks, a command in flight). */
  NotMigratable = 'NOT_MIGRATABLE',
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  constructor(readonly code: MigrationErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
  }
}

/** The error as a MigrationError: itself, or wrapped with `code` and its message kept. */
export function asMigrationError(err: unknown, code: MigrationErrorCode, what: string): MigrationError {
  if (err instanceof MigrationError) return err;
  const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new MigrationError(code, `${what}: ${detail}`, { cause: err });
}
