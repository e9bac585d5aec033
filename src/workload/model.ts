// The reference model: the exact bytes of one side's workload area after a run, computed only
// from the configuration and how many operations each side posted on each QP. A completed run
// whose memory differs from the model in any byte lost, duplicated, misplaced or corrupted data.
import { type QpRegions, type WorkloadConfig, qpRegions } from './config.js';
import { Stream, fillPayload, payloadKey } from './pattern.js';
import { OpKind, countOf, lastInSlot, messageAt, messagesOf } from './schedule.js';

export interface AreaMismatch {
  qp: number;
  region: keyof Omit<QpRegions, 'blockBytes'>;
  /** Offset of the first differing byte inside the region. */
  offsetBytes: number;
  want: number;
  have: number;
}

/** The expected contents of `side`'s area (all QP blocks, in order). */
export function expectedArea(c: WorkloadConfig, side: number, ownOps: readonly number[], peerOps: readonly number[]): Uint8Array {
  const r = qpRegions(c);
  const out = new Uint8Array(r.blockBytes * c.qps);
  const peer = 1 - side;
  const M = c.messageBytes;
  const payload = (base: number, slot: number, key: number) => fillPayload(out.subarray(base + slot * M, base + (slot + 1) * M), key);
  for (let q = 0; q < c.qps; q++) {
    const b = q * r.blockBytes;
    const own = ownOps[q] ?? 0;
    const theirs = peerOps[q] ?? 0;
    const dv = new DataView(out.buffer, b);
    for (let s = 0; s < c.slots; s++) {
      // What this side wrote before posting its WRITEs and SENDs.
      const w = lastInSlot(countOf(OpKind.WriteImm, own), s, c.slots);
      if (w >= 0) payload(b + r.writeSrc, s, payloadKey(c.seed, side, q, Stream.Write, w));
      const snd = lastInSlot(countOf(OpKind.Send, own), s, c.slots);
      if (snd >= 0) payload(b + r.sendSrc, s, payloadKey(c.seed, side, q, Stream.Send, snd));
      // READ k copies the peer's read slot k mod slots into the same slot here.
      if (lastInSlot(countOf(OpKind.Read, own), s, c.slots) >= 0) payload(b + r.readDst, s, payloadKey(c.seed, peer, q, Stream.Read, s));
      // Fetch-add k returned k: the QP executes its atomics in order on a counter only it adds to.
      const fa = lastInSlot(countOf(OpKind.FetchAdd, own), s, c.slots);
      if (fa >= 0) dv.setBigUint64(r.faResult + 8 * s, BigInt(fa), true);
      // The peer's WRITEs.
      const pw = lastInSlot(countOf(OpKind.WriteImm, theirs), s, c.slots);
      if (pw >= 0) payload(b + r.writeDst, s, payloadKey(c.seed, peer, q, Stream.Write, pw));
      // Receive m lands in slot m mod slots; only SEND messages carry bytes into it, and with an
      // even slot count a slot sees only SENDs or only WRITE-with-immediates.
      const m = lastInSlot(messagesOf(theirs), s, c.slots);
      if (m >= 0) {
        const msg = messageAt(m);
        if (msg.send) payload(b + r.recvDst, s, payloadKey(c.seed, peer, q, Stream.Send, msg.seq));
      }
      // Filled at setup, never written again.
      payload(b + r.readSrc, s, payloadKey(c.seed, side, q, Stream.Read, s));
    }
    dv.setBigUint64(r.counter, BigInt(countOf(OpKind.FetchAdd, theirs)), true);
  }
  return out;
}

const REGIONS = ['writeSrc', 'sendSrc', 'readDst', 'faResult', 'writeDst', 'recvDst', 'readSrc', 'counter'] as const;

/** Where `have` (the area as read from guest memory) first differs from the model, or null. */
export function compareArea(c: WorkloadConfig, side: number, ownOps: readonly number[], peerOps: readonly number[], have: Uint8Array): AreaMismatch | null {
  const want = expectedArea(c, side, ownOps, peerOps);
  if (have.length !== want.length) throw new RangeError(`area is ${want.length} bytes, got ${have.length}`);
  const r = qpRegions(c);
  for (let i = 0; i < want.length; i++) {
    if (have[i] === want[i]) continue;
    const qp = Math.floor(i / r.blockBytes);
    const inBlock = i - qp * r.blockBytes;
    let region: AreaMismatch['region'] = 'writeSrc';
    for (const name of REGIONS) if (r[name] <= inBlock) region = name;
    return { qp, region, offsetBytes: inBlock - r[region], want: want[i], have: have[i] };
  }
  return null;
}
