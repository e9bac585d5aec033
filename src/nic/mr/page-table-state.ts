// The plain-data snapshot of a page table (for the device state of R9) and its validation. A
// state is untrusted input: validateState checks its shape and types; PageTable.fromState then
// checks it against the destination's memory exactly as a new registration would be.
import { MrError, MrErrorCode } from './errors.js';

interface CommonState {
  readonly pageShift: 12 | 21;
  readonly access: number;
  readonly onDemand: boolean;
  /** Indexes of pages that are not present (always empty without on-demand paging). */
  readonly absent: readonly number[];
}

export interface PhysicalTableState extends CommonState {
  readonly kind: 'physical';
  readonly iova: number;
  readonly length: number;
  /** Guest-physical address of each page. */
  readonly pages: readonly number[];
}

export interface AllMemoryTableState extends CommonState {
  readonly kind: 'all-memory';
  /** Configured size, or null to follow the guest's regions. */
  readonly sizeBytes: number | null;
}

export type PageTableState = PhysicalTableState | AllMemoryTableState;

function bad(message: string): never {
  throw new MrError(MrErrorCode.BadState, message);
}

function integer(o: Record<string, unknown>, key: string): number {
  const value = o[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) bad(`${key} must be a non-negative integer`);
  return value;
}

function integerList(o: Record<string, unknown>, key: string): number[] {
  const value = o[key];
  if (!Array.isArray(value)) bad(`${key} must be an array`);
  return value.map((v, i) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${key}[${i}] must be a non-negative integer`);
    return v;
  });
}

/** Check the shape of an untrusted state and copy it into fresh plain data. */
export function validateState(input: unknown): PageTableState {
  if (typeof input !== 'object' || input === null) bad('state must be an object');
  const o = input as Record<string, unknown>;
  const pageShift = integer(o, 'pageShift');
  if (pageShift !== 12 && pageShift !== 21) bad(`pageShift must be 12 or 21, got ${pageShift}`);
  if (typeof o.onDemand !== 'boolean') bad('onDemand must be a boolean');
  const absent = integerList(o, 'absent');
  if (!o.onDemand && absent.length > 0) bad('only an on-demand table can have absent pages');
  const common = { pageShift: pageShift as 12 | 21, access: integer(o, 'access'), onDemand: o.onDemand, absent };
  if (o.kind === 'physical') {
    return { kind: 'physical', iova: integer(o, 'iova'), length: integer(o, 'length'), pages: integerList(o, 'pages'), ...common };
  }
  if (o.kind === 'all-memory') {
    const sizeBytes = o.sizeBytes === null ? null : integer(o, 'sizeBytes');
    return { kind: 'all-memory', sizeBytes, ...common };
  }
  return bad(`unknown page table kind ${String(o.kind)}`);
}
