// The fixed order of operations on each QP. Operation j is of kind j mod 4 and is the
// (j div 4)-th of its kind, so every count the model needs follows from how many operations
// were posted. The peer's WRITE-with-immediates and SENDs each consume one receive, in the
// order posted: message m is WRITE-with-immediate (m div 2) when m is even, SEND (m div 2) when odd.

export enum OpKind {
  WriteImm = 0,
  Send = 1,
  Read = 2,
  FetchAdd = 3,
}

export const OP_KINDS = 4;
export const OP_KIND_NAMES: Record<OpKind, string> = {
  [OpKind.WriteImm]: 'write-imm',
  [OpKind.Send]: 'send',
  [OpKind.Read]: 'read',
  [OpKind.FetchAdd]: 'fetch-add',
};

export function opKind(j: number): OpKind {
  return (j % OP_KINDS) as OpKind;
}

/** Sequence number of operation j among those of its kind. */
export function opSeq(j: number): number {
  return Math.floor(j / OP_KINDS);
}

/** How many of the first `ops` operations are of `kind`. */
export function countOf(kind: OpKind, ops: number): number {
  return Math.max(0, Math.floor((ops + OP_KINDS - 1 - kind) / OP_KINDS));
}

/** Messages (receives consumed at the peer) among the first `ops` operations. */
export function messagesOf(ops: number): number {
  return countOf(OpKind.WriteImm, ops) + countOf(OpKind.Send, ops);
}

/** Whether message m is a SEND (else a WRITE with immediate), and its sequence among its kind. */
export function messageAt(m: number): { send: boolean; seq: number } {
  return { send: m % 2 === 1, seq: Math.floor(m / 2) };
}

/** The largest k < count with k ≡ slot (mod slots), or -1. */
export function lastInSlot(count: number, slot: number, slots: number): number {
  if (count <= slot) return -1;
  return slot + Math.floor((count - 1 - slot) / slots) * slots;
}
