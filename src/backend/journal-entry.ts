// What one journal entry holds (journal.ts): the device's R9 state (docs/state-format.md) as it
// stands at the end of a turn, the used elements the turn added but has not published yet (the
// state's rings count only what was published), and, for an entry committed just before a
// responder executed an atomic, that atomic's intent. Binary, little-endian:
//   u32 magic "VRJE" | u32 device state length | device state | u32 queue count |
//   per queue: u32 vq, u32 n, n × (u32 id, u32 length, u32 ring slots: a packed ring's chain
//   length, 1 for a split ring) |
//   u32 intent (0 or 1), u32 QPN, u32 PSN, u32 opcode, u32 rkey, u32 offset, u64 va, u64 before, u64 after
// Decoding checks every length against the bytes there are (BackendError BAD_JOURNAL).
import type { AtomicIntent } from '../nic/soft/options.js';
import { BackendError, BackendErrorCode } from './errors.js';

const INTENT_BYTES = 48;
const USED_BYTES = 12;

export type UsedTriple = [id: number, len: number, slots: number];

const MAGIC = 0x454a5256; // "VRJE"

export interface JournalEntry {
  deviceState: Uint8Array;
  /** Per queue, the used entries as [id, length, ring slots] (slots 1 for a split ring). */
  unpublished: { vq: number; used: UsedTriple[] }[];
  /** Set on the entry committed right before an atomic: whether it then ran is unknown. */
  intent: AtomicIntent | null;
}

export type { AtomicIntent };

/** The entry as chunks to write one after another: its header, the device state, the used elements. */
export function journalEntryChunks(e: JournalEntry): Uint8Array[] {
  const head = new Uint8Array(8);
  const hv = new DataView(head.buffer);
  hv.setUint32(0, MAGIC, true);
  hv.setUint32(4, e.deviceState.length, true);
  const usedCount = e.unpublished.reduce((n, q) => n + q.used.length, 0);
  const tail = new Uint8Array(4 + 8 * e.unpublished.length + USED_BYTES * usedCount + INTENT_BYTES);
  const v = new DataView(tail.buffer);
  v.setUint32(0, e.unpublished.length, true);
  let at = 4;
  for (const q of e.unpublished) {
    v.setUint32(at, q.vq, true);
    v.setUint32(at + 4, q.used.length, true);
    at += 8;
    for (const [id, len, slots] of q.used) {
      v.setUint32(at, id, true);
      v.setUint32(at + 4, len, true);
      v.setUint32(at + 8, slots, true);
      at += USED_BYTES;
    }
  }
  const i = e.intent;
  if (i !== null) {
    v.setUint32(at, 1, true);
    v.setUint32(at + 4, i.qpn, true);
    v.setUint32(at + 8, i.psn, true);
    v.setUint32(at + 12, i.opcode, true);
    v.setUint32(at + 16, i.rkey, true);
    v.setUint32(at + 20, i.offset, true);
    v.setBigUint64(at + 24, i.va, true);
    v.setBigUint64(at + 32, i.before, true);
    v.setBigUint64(at + 40, i.after, true);
  }
  return [head, e.deviceState, tail];
}

export function encodeJournalEntry(e: JournalEntry): Uint8Array {
  const chunks = journalEntryChunks(e);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function decodeJournalEntry(bytes: Uint8Array): JournalEntry {
  const bad = (why: string) => new BackendError(BackendErrorCode.BadJournal, `journal entry: ${why}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number, what: string) => {
    if (at + n > bytes.length) throw bad(`${what} runs past the ${bytes.length}-byte entry`);
  };
  need(0, 8, 'the header');
  if (v.getUint32(0, true) !== MAGIC) throw bad('not a journal entry');
  const stateLen = v.getUint32(4, true);
  need(8, stateLen, 'the device state');
  const deviceState = bytes.slice(8, 8 + stateLen);
  let at = 8 + stateLen;
  need(at, 4, 'the queue count');
  const queues = v.getUint32(at, true);
  at += 4;
  const unpublished: JournalEntry['unpublished'] = [];
  const seen = new Set<number>();
  for (let i = 0; i < queues; i++) {
    need(at, 8, 'a queue header');
    const vq = v.getUint32(at, true);
    const n = v.getUint32(at + 4, true);
    at += 8;
    if (seen.has(vq)) throw bad(`queue ${vq} appears twice`);
    seen.add(vq);
    need(at, USED_BYTES * n, `queue ${vq}'s used elements`);
    const used: UsedTriple[] = [];
    for (let k = 0; k < n; k++, at += USED_BYTES) used.push([v.getUint32(at, true), v.getUint32(at + 4, true), v.getUint32(at + 8, true)]);
    unpublished.push({ vq, used });
  }
  need(at, INTENT_BYTES, 'the atomic intent');
  const flag = v.getUint32(at, true);
  if (flag > 1) throw bad(`intent flag ${flag}`);
  const intent: AtomicIntent | null = flag === 0 ? null : {
    qpn: v.getUint32(at + 4, true), psn: v.getUint32(at + 8, true), opcode: v.getUint32(at + 12, true), rkey: v.getUint32(at + 16, true),
    offset: v.getUint32(at + 20, true), va: v.getBigUint64(at + 24, true), before: v.getBigUint64(at + 32, true), after: v.getBigUint64(at + 40, true),
  };
  at += INTENT_BYTES;
  if (at !== bytes.length) throw bad(`${bytes.length - at} bytes after the atomic intent`);
  return { deviceState, unpublished, intent };
}
