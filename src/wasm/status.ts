// Names and messages for the kernel status codes of assembly/status.ts (the single source).
import * as S from '../../assembly/status.js';

export type KernelStatus = number;

const NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(S)) NAMES.set(value, name.replace(/^ST_/, ''));

const MESSAGES: Record<number, string> = {
  [S.ST_OUT_OF_RANGE]: 'address range is not inside one guest memory region',
  [S.ST_OVERFLOW]: 'address plus length overflows',
  [S.ST_LOOP]: 'descriptor chain loops or is longer than the queue',
  [S.ST_NESTED_INDIRECT]: 'indirect descriptor inside an indirect table',
  [S.ST_BAD_INDIRECT_LEN]: 'indirect table length is zero or not a multiple of 16',
  [S.ST_AVAIL_JUMP]: 'available index moved by more than the queue size',
  [S.ST_BAD_INDEX]: 'descriptor index outside the table',
  [S.ST_READ_AFTER_WRITE]: 'device-readable descriptor after a device-writable one',
  [S.ST_CHAIN_TOO_LONG]: 'chain length does not fit in 32 bits',
  [S.ST_NO_SPACE]: 'kernel output buffer too small',
  [S.ST_BAD_RING]: 'ring address misaligned or queue size invalid',
  [S.ST_BAD_ID]: 'used id does not name a chain held by the device',
  [S.ST_ACCESS]: 'access not permitted by the registration',
  [S.ST_BAD_KEY]: 'key or handle does not name a live object',
  [S.ST_REGION_CONFLICT]: 'region table full or regions overlap',
  [S.ST_PAGE_FAULT]: 'page not present',
  [S.ST_MISALIGNED]: 'pointer or length not aligned for atomic access',
};

/** Short name of a status code, for logs ("OUT_OF_RANGE"). */
export function statusName(code: KernelStatus): string {
  return NAMES.get(code) ?? `STATUS_${code}`;
}

/** One-line description of a status code, for error messages. */
export function statusMessage(code: KernelStatus): string {
  return MESSAGES[code] ?? `unknown kernel status ${code}`;
}

export * from '../../assembly/status.js';
