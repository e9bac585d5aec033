// Classic libpcap capture files with Ethernet link type: a reader (tests read the vector files;
// either byte order, microsecond or nanosecond timestamps) and a writer that emits the header and
// records as separate chunks, so a live capture can stream them to a file.
import { RoceError, RoceErrorCode } from './errors.js';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;
const HEADER_BYTES = 24;
const RECORD_BYTES = 16;

export interface PcapRecord {
  /** Capture time in nanoseconds since the epoch. */
  readonly timeNs: bigint;
  /** The captured bytes (a view into the file's buffer when read). */
  readonly data: Uint8Array;
  /** Length of the frame on the wire (>= data.length when the capture was cut short). */
  readonly wireBytes: number;
}

const bad = (detail: string): RoceError => new RoceError(RoceErrorCode.BadCapture, detail);

/** Parse a whole capture file. Throws RoceError(BAD_CAPTURE) on anything malformed. */
export function readPcap(file: Uint8Array): PcapRecord[] {
  if (file.length < HEADER_BYTES) throw bad(`${file.length} bytes cannot hold a pcap header`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let little: boolean;
  let nanos: boolean;
  const magicLe = view.getUint32(0, true);
  const magicBe = view.getUint32(0, false);
  if (magicLe === PCAP_MAGIC_US || magicLe === PCAP_MAGIC_NS) [little, nanos] = [true, magicLe === PCAP_MAGIC_NS];
  else if (magicBe === PCAP_MAGIC_US || magicBe === PCAP_MAGIC_NS) [little, nanos] = [false, magicBe === PCAP_MAGIC_NS];
  else throw bad(`magic 0x${magicLe.toString(16)} is not classic pcap`);
  const linkType = view.getUint32(20, little) & 0x0fffffff;
  if (linkType !== LINKTYPE_ETHERNET) throw bad(`link type ${linkType} is not Ethernet`);
  const records: PcapRecord[] = [];
  let off = HEADER_BYTES;
  while (off < file.length) {
    if (off + RECORD_BYTES > file.length) throw bad(`record header cut short at ${off}`);
    const sec = view.getUint32(off, little);
    const frac = view.getUint32(off + 4, little);
    const incl = view.getUint32(off + 8, little);
    const orig = view.getUint32(off + 12, little);
    if (nanos ? frac >= 1e9 : frac >= 1e6) throw bad(`record at ${off}: sub-second field ${frac} out of range`);
    if (off + RECORD_BYTES + incl > file.length) throw bad(`record at ${off} claims ${incl} bytes past the end`);
    const data = file.subarray(off + RECORD_BYTES, off + RECORD_BYTES + incl);
    records.push({ timeNs: BigInt(sec) * 1_000_000_000n + BigInt(nanos ? frac : frac * 1000), data, wireBytes: Math.max(orig, incl) });
    off += RECORD_BYTES + incl;
  }
  return records;
}

/** The file header of a microsecond, little-endian, Ethernet capture. */
export function pcapHeader(snapLen = 65535): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC_US, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setUint32(16, snapLen, true);
  v.setUint32(20, LINKTYPE_ETHERNET, true);
  return out;
}

/** One record: its 16-byte header followed by the frame (cut to snapLen). */
export function pcapRecord(frame: Uint8Array, timeNs: bigint, snapLen = 65535): Uint8Array {
  const incl = Math.min(frame.length, snapLen);
  const out = new Uint8Array(RECORD_BYTES + incl);
  const v = new DataView(out.buffer);
  const us = timeNs / 1000n;
  v.setUint32(0, Number(us / 1_000_000n) >>> 0, true);
  v.setUint32(4, Number(us % 1_000_000n), true);
  v.setUint32(8, incl, true);
  v.setUint32(12, frame.length, true);
  out.set(frame.subarray(0, incl), RECORD_BYTES);
  return out;
}

/** A whole capture file from records (their timestamps are kept to the microsecond). */
export function writePcap(records: readonly Pick<PcapRecord, 'timeNs' | 'data'>[], snapLen = 65535): Uint8Array {
  const chunks = [pcapHeader(snapLen), ...records.map((r) => pcapRecord(r.data, r.timeNs, snapLen))];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
