// Checks for plain-data snapshots (XxxState) that arrive from elsewhere: each returns the value
// typed, or calls the caller's `fail` (which throws that layer's error) naming the field.

export type Fail = (message: string) => never;

export function record(value: unknown, what: string, fail: Fail): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} is not an object`);
  return value as Record<string, unknown>;
}

export function int(value: unknown, min: number, max: number, what: string, fail: Fail): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) fail(`${what} = ${String(value)} is not an integer in ${min}..${max}`);
  return value as number;
}

export function bool(value: unknown, what: string, fail: Fail): boolean {
  if (typeof value !== 'boolean') fail(`${what} is not a boolean`);
  return value as boolean;
}

export function array(value: unknown, what: string, fail: Fail, length?: number): unknown[] {
  if (!Array.isArray(value)) fail(`${what} is not an array`);
  const a = value as unknown[];
  if (length !== undefined && a.length !== length) fail(`${what} has ${a.length} entries, expected ${length}`);
  return a;
}

export function ints(value: unknown, min: number, max: number, what: string, fail: Fail, length?: number): number[] {
  const a = array(value, what, fail, length);
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    // The element's name is built only for the message: a ring's state has an entry per slot.
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) int(v, min, max, `${what}[${i}]`, fail);
    out[i] = v as number;
  }
  return out;
}

const DECIMAL_U64 = /^\d{1,20}$/;
const U64_END = 2n ** 64n;

/** A u64 carried as a decimal string (bigints do not survive JSON). */
export function u64(value: unknown, what: string, fail: Fail): bigint {
  if (typeof value !== 'string' || !DECIMAL_U64.test(value)) fail(`${what} is not a u64 in decimal`);
  const v = BigInt(value as string);
  if (v >= U64_END) fail(`${what} is not a u64 in decimal`);
  return v;
}

export function string(value: unknown, what: string, fail: Fail, maxLength = 256): string {
  if (typeof value !== 'string' || value.length > maxLength) fail(`${what} is not a string of at most ${maxLength} characters`);
  return value as string;
}
