// What a writer of guest memory needs from a dirty log (R4): whether logging is on, and a way to
// say which guest-physical bytes it wrote. src/migration/dirty-log.ts implements it over a shared
// bitmap; the memory layer only names the interface so that every writer (device, provider, the
// simulated guest) can reach the log through the memory it writes, without depending on migration.
//
// Writers test `enabled` before calling `mark`: with logging off the data path pays one boolean
// test and no call.

export interface WriteLog {
  readonly enabled: boolean;
  /** Guest-physical [gpa, gpa+lenBytes) was written. */
  mark(gpa: number, lenBytes: number): void;
}

/** The log of a memory nobody migrates: never enabled. */
export const NO_WRITE_LOG: WriteLog = Object.freeze({
  enabled: false,
  mark(): void {},
});
