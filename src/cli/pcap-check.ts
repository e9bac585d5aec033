// `vrdma pcap-check FILE`: decode every frame of a capture as RoCE v2 and check its ICRC. One JSON
// object per frame on stdout (frame numbers from 1, as Wireshark counts), with the BTH, each
// extended header, the payload length and icrcOk; 64-bit fields are "0x..." strings (JSON numbers
// stop being exact at 2^53). A frame that is not RoCE v2, or is malformed, gets an `error` field.
// Exit status: 0 when every RoCE frame (IPv4/UDP to port 4791) has a right ICRC, 1 when one does
// not or cannot be checked, 2 when the file itself cannot be read.
import { PcapFileReader } from '../net/pcap-reader.js';
import { RoceError } from '../nic/roce/errors.js';
import { type FrameInfo, parseFrame } from '../nic/roce/frame.js';
import * as H from '../nic/roce/headers.js';
import { ICRC_BYTES, type IcrcEngine, ipv4Text, MIN_ICRC_PACKET_BYTES, ROCE_UDP_PORT, TsIcrc } from '../nic/roce/icrc.js';
import { BTH_BYTES, opcodeName } from '../nic/roce/opcodes.js';
import { packetFields, parsePacket } from '../nic/roce/packet.js';
import type { PcapRecord } from '../nic/roce/pcap.js';

export type FrameReport = Record<string, unknown>;

export interface FrameVerdict {
  readonly report: FrameReport;
  /** Whether the frame is IPv4/UDP to port 4791, well formed or not. */
  readonly roce: boolean;
  /** Whether its ICRC was computed and matched (false also when it could not be checked). */
  readonly icrcOk: boolean;
}

const AETH_TYPES = ['ACK', 'RNR_NAK', 'RESERVED', 'NAK'];
const NAK_NAMES: Record<number, string> = {
  [H.NakCode.PsnSequenceError]: 'PSN_SEQUENCE_ERROR',
  [H.NakCode.InvalidRequest]: 'INVALID_REQUEST',
  [H.NakCode.RemoteAccessError]: 'REMOTE_ACCESS_ERROR',
  [H.NakCode.RemoteOperationalError]: 'REMOTE_OPERATIONAL_ERROR',
  [H.NakCode.InvalidRdRequest]: 'INVALID_RD_REQUEST',
};

const hex64 = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;
const hex32 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** Whether bytes that failed to parse as a RoCE v2 frame were at least meant as one. */
function aimedAtRoce(b: Uint8Array): boolean {
  if (b.length < 14 + 20 + 4 || b[12] !== 0x08 || b[13] !== 0x00 || b[14] >>> 4 !== 4) return false;
  const udp = 14 + (b[14] & 0xf) * 4;
  return b[14 + 9] === 17 && udp + 4 <= b.length && ((b[udp + 2] << 8) | b[udp + 3]) === ROCE_UDP_PORT;
}

function bthReport(b: Uint8Array, o: number): FrameReport {
  const h = H.bthAt(b, o);
  return {
    opcode: h.opcode, opcodeName: opcodeName(h.opcode), psn: h.psn, dqpn: h.dqpn, ackReq: h.ackReq, solicited: h.solicited,
    migReq: h.migReq, padCount: h.padCount, pkey: h.pkey, fecn: h.fecn, becn: h.becn, tver: h.tver,
  };
}

function extendedHeaders(fields: ReturnType<typeof packetFields>): FrameReport {
  const r: FrameReport = {};
  if (fields.reth) r.reth = { va: hex64(fields.reth.va), rkey: hex32(fields.reth.rkey), dmaLen: fields.reth.dmaLen };
  if (fields.aeth) {
    const { syndrome, msn } = fields.aeth;
    const type = H.aethTypeOf(syndrome);
    const value = H.aethValueOf(syndrome);
    r.aeth = { syndrome, msn, type: AETH_TYPES[type], value, ...(type === H.AethType.Nak ? { nak: NAK_NAMES[value] ?? 'RESERVED' } : {}) };
  }
  if (fields.atomicEth) {
    const a = fields.atomicEth;
    r.atomicEth = { va: hex64(a.va), rkey: hex32(a.rkey), swapAdd: hex64(a.swapAdd), compare: hex64(a.compare) };
  }
  if (fields.atomicAckOrig !== undefined) r.atomicAckEth = { orig: hex64(fields.atomicAckOrig) };
  if (fields.immDt !== undefined) r.immDt = hex32(fields.immDt);
  if (fields.iethRkey !== undefined) r.ieth = { rkey: hex32(fields.iethRkey) };
  if (fields.deth) r.deth = { qkey: hex32(fields.deth.qkey), srcQp: fields.deth.srcQp };
  return r;
}

/** Decode and check one captured frame. Never throws, whatever the bytes. */
export function checkFrame(frameNo: number, rec: PcapRecord, engine: IcrcEngine = new TsIcrc()): FrameVerdict {
  const b = rec.data;
  if (rec.wireBytes > b.length) {
    const roce = aimedAtRoce(b);
    return { roce, icrcOk: false, report: { frame: frameNo, error: `frame cut to ${b.length} of ${rec.wireBytes} bytes by the capture's snap length: cannot be checked` } };
  }
  const f: FrameInfo | RoceError = parseFrame(b);
  if (f instanceof RoceError) return { roce: aimedAtRoce(b), icrcOk: false, report: { frame: frameNo, error: f.message } };
  const report: FrameReport = {
    frame: frameNo,
    src: `${ipv4Text(f.ctx.srcIp)}:${f.ctx.srcPort}`,
    dst: `${ipv4Text(f.ctx.dstIp)}:${f.ctx.dstPort}`,
  };
  if (f.bthLen < MIN_ICRC_PACKET_BYTES) {
    return { roce: true, icrcOk: false, report: { ...report, error: `${f.bthLen} bytes after the UDP header cannot hold a BTH and an ICRC` } };
  }
  const computed = engine.icrc(f.ctx, b, f.bthOff, f.bthLen);
  const icrcAt = f.bthOff + f.bthLen - ICRC_BYTES;
  const stored = (b[icrcAt] | (b[icrcAt + 1] << 8) | (b[icrcAt + 2] << 16) | (b[icrcAt + 3] << 24)) >>> 0;
  const icrcOk = computed === stored;
  const icrc = { icrc: hex32(stored), icrcOk, ...(icrcOk ? {} : { icrcComputed: hex32(computed) }) };
  Object.assign(report, f.bthLen >= BTH_BYTES ? bthReport(b, f.bthOff) : {});
  const pkt = parsePacket(b, f.bthOff, f.bthLen, null);
  if (pkt instanceof RoceError) return { roce: true, icrcOk, report: { ...report, error: pkt.message, ...icrc } };
  return { roce: true, icrcOk, report: { ...report, ...extendedHeaders(packetFields(pkt)), payloadBytes: pkt.payloadBytes, ...icrc } };
}

/** One report as a JSON line. */
export function reportLine(report: FrameReport): string {
  return JSON.stringify(report);
}

export interface PcapCheckIo {
  out(text: string): void;
  err(text: string): void;
}

const stdio: PcapCheckIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** `vrdma pcap-check big.pcap | head`: a reader that stops early is not an error. */
function ignoreBrokenPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

/** Check every frame of the file at `path`; returns the exit status (0, 1 or 2, see above). */
export function runPcapCheck(path: string, io: PcapCheckIo = stdio): number {
  if (io === stdio) ignoreBrokenPipe();
  const engine = new TsIcrc();
  let failed = 0;
  let lines: string[] = [];
  const drain = () => {
    if (lines.length > 0) io.out(lines.join('\n') + '\n');
    lines = [];
  };
  let reader: PcapFileReader | null = null;
  try {
    reader = PcapFileReader.open(path);
    let frameNo = 0;
    for (let rec = reader.next(); rec !== null; rec = reader.next()) {
      const v = checkFrame(++frameNo, rec, engine);
      if (v.roce && !v.icrcOk) failed++;
      lines.push(reportLine(v.report));
      if (lines.length >= 1024) drain();
    }
  } catch (err) {
    drain();
    io.err(`vrdma pcap-check: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  } finally {
    reader?.close();
  }
  drain();
  if (failed > 0) io.err(`vrdma pcap-check: ${failed} RoCE frame(s) with a wrong or unchecked ICRC\n`);
  return failed > 0 ? 1 : 0;
}
