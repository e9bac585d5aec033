// Guest-physical addresses get their own type so they cannot be mixed up with memory offsets or
// MR iovas. A Gpa is a non-negative integer below 2^53 (JS numbers are exact there); guest values
// read from hostile memory are 64-bit and are checked before they become a Gpa.

declare const gpaBrand: unique symbol;
/** A guest-physical address. */
export type Gpa = number & { readonly [gpaBrand]: true };

/** Largest address a Gpa can hold exactly. */
export const GPA_MAX = Number.MAX_SAFE_INTEGER;

/** Make a Gpa from a number the caller knows to be a guest-physical address. */
export function gpa(value: number): Gpa {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a guest-physical address: ${value}`);
  return value as Gpa;
}

/** "0x..." for logs. */
export function gpaHex(address: Gpa): string {
  return `0x${address.toString(16)}`;
}
