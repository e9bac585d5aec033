// The guest driver's saved state on the wire: UTF-8 JSON of the plain RdmaGuestState (u64s are
// already decimal strings). Decoding only parses; RdmaGuest.restore validates every field.
import { GuestError, GuestErrorCode } from './errors.js';

export function encodeGuestState(state: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}

export function decodeGuestState(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch (err) {
    throw new GuestError(GuestErrorCode.BadState, `guest state is not UTF-8 JSON: ${(err as Error).message}`);
  }
}
