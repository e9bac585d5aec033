// Settling an atomic that was in flight when a durable backend died (device-backend.ts). The
// journal entry committed right before a responder executed an atomic carries its intent: the
// target word's offset in the device memory and its value before and after the operation. The
// entry's state is from before the atomic. Reading the word now tells what happened:
//   - it still holds `before` (or the operation changes nothing): the atomic did not run, or ran
//     to no effect; the state stands, and the peer's retransmission executes it;
//   - it holds `after`: the atomic ran; the state is brought forward as if the responder had
//     finished it (its saved result, the next PSN), so the retransmission is answered from that
//     result and the memory is not changed twice;
//   - anything else: something else wrote the word meanwhile and the outcome is unknown; the QP
//     goes to ERR.
import { decodeDeviceState, encodeDeviceState } from '../device/state/codec.js';
import { PSN_MASK } from '../nic/roce/psn.js';
import type { AtomicIntent } from '../nic/soft/options.js';
import { decodeSoftRoceState, encodeSoftRoceState } from '../nic/soft/state/codec.js';

export type IntentOutcome = 'not-run' | 'ran' | 'in-doubt';

/** What the target word's current value says about the atomic. */
export function settleIntent(current: bigint, intent: AtomicIntent): IntentOutcome {
  if (intent.before === intent.after || current === intent.before) return 'not-run';
  return current === intent.after ? 'ran' : 'in-doubt';
}

/** The target word now, or null if the offset is not an aligned word of `memory`. */
export function readTarget(memory: WebAssembly.Memory, intent: AtomicIntent): bigint | null {
  const words = new BigUint64Array(memory.buffer);
  if (!Number.isInteger(intent.offset) || intent.offset % 8 !== 0 || intent.offset / 8 >= words.length) return null;
  return Atomics.load(words, intent.offset / 8);
}

/**
 * The device state `deviceState` with QP `intent.qpn`'s responder past the atomic: its result
 * saved among the responder resources (the oldest dropped beyond max_dest_rd_atomic, as the
 * responder does) and the expected PSN and MSN one further. Null if the state does not show the
 * responder waiting for that atomic (no such QP, or another PSN): then the outcome is in doubt.
 */
export function stateWithAtomicDone(deviceState: Uint8Array, intent: AtomicIntent): Uint8Array | null {
  const device = decodeDeviceState(deviceState);
  const provider = decodeSoftRoceState(device.provider);
  const qp = provider.qps.find((q) => q.qpn === intent.qpn);
  if (qp === undefined || qp.resp.psn !== intent.psn) return null;
  const r = qp.resp;
  const list = r.resources;
  while (list.length >= Math.max(1, qp.attrs.maxDestRdAtomic)) list.shift();
  list.push({ atomic: true, psn: intent.psn, psnCount: 1, rkey: intent.rkey, va: intent.va, lenBytes: 8, orig: intent.before });
  r.psn = (intent.psn + 1) & PSN_MASK;
  r.msn = (r.msn + 1) & PSN_MASK;
  r.lastOpcode = intent.opcode;
  // The atomic's acknowledgement covers whatever ACK was still owed.
  r.ackPending = false;
  r.nakSent = false;
  return encodeDeviceState({ ...device, provider: encodeSoftRoceState(provider) });
}
