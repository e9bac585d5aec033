// A classic pcap file read record by record through a fixed buffer, so a capture of any size is
// checked in bounded memory and a hostile file (a record length of 4 GiB, a file cut mid-record)
// is refused with a clear error at the offset where it goes wrong. Either byte order, micro- or
// nanosecond timestamps, Ethernet link type (what vrdma writes and Linux captures RoCE v2 with).
import { closeSync, openSync, readSync } from 'node:fs';
import { LINKTYPE_ETHERNET, PCAP_MAGIC_NS, PCAP_MAGIC_US, type PcapRecord } from '../nic/roce/pcap.js';
import { NetError, NetErrorCode } from './errors.js';

const HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;
/** libpcap's largest snap length: no sane record is longer. */
export const MAX_RECORD_BYTES = 262144;
const PCAPNG_MAGIC = 0x0a0d0d0a;

export interface PcapFileHeader {
  readonly littleEndian: boolean;
  readonly nanosecond: boolean;
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly snapBytes: number;
  readonly linkType: number;
}

const bad = (path: string, detail: string): NetError => new NetError(NetErrorCode.BadCapture, `${path}: ${detail}`);

export class PcapFileReader {
  private readonly buf = new Uint8Array(2 * MAX_RECORD_BYTES);
  private readonly view = new DataView(this.buf.buffer);
  /** Unconsumed bytes are buf[pos, end); fileOff is the file offset of buf[pos]. */
  private pos = 0;
  private end = 0;
  private fileOff = 0;
  private eof = false;
  private fd: number | null;
  readonly header: PcapFileHeader;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
    try {
      this.header = this.readHeader();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Open a file and read its header; throws NetError (CAPTURE_IO, BAD_CAPTURE). */
  static open(path: string): PcapFileReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new NetError(NetErrorCode.CaptureIo, `cannot open ${path}: ${(err as Error).message}`, { cause: err });
    }
    return new PcapFileReader(path, fd);
  }

  /** Make `need` bytes available at pos; false if the file ends first. */
  private ensure(need: number): boolean {
    while (this.end - this.pos < need && !this.eof) {
      if (this.pos > 0) {
        this.buf.copyWithin(0, this.pos, this.end);
        this.end -= this.pos;
        this.pos = 0;
      }
      let n: number;
      try {
        n = readSync(this.fd!, this.buf, this.end, this.buf.length - this.end, null);
      } catch (err) {
        throw new NetError(NetErrorCode.CaptureIo, `reading ${this.path}: ${(err as Error).message}`, { cause: err });
      }
      if (n === 0) this.eof = true;
      this.end += n;
    }
    return this.end - this.pos >= need;
  }

  private consume(n: number): void {
    this.pos += n;
    this.fileOff += n;
  }

  private readHeader(): PcapFileHeader {
    if (!this.ensure(HEADER_BYTES)) throw bad(this.path, `${this.end} bytes cannot hold a pcap file header (24 bytes)`);
    const v = this.view;
    const le = v.getUint32(0, true);
    const be = v.getUint32(0, false);
    let littleEndian: boolean;
    if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) littleEndian = true;
    else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) littleEndian = false;
    else if (le === PCAPNG_MAGIC) throw bad(this.path, 'this is a pcapng file; save it as classic pcap (editcap -F pcap)');
    else throw bad(this.path, `bad magic 0x${be.toString(16).padStart(8, '0')}: not a pcap file`);
    const magic = v.getUint32(0, littleEndian);
    const header: PcapFileHeader = {
      littleEndian,
      nanosecond: magic === PCAP_MAGIC_NS,
      versionMajor: v.getUint16(4, littleEndian),
      versionMinor: v.getUint16(6, littleEndian),
      snapBytes: v.getUint32(16, littleEndian),
      linkType: v.getUint32(20, littleEndian) & 0x0fffffff,
    };
    if (header.versionMajor !== 2) throw bad(this.path, `pcap version ${header.versionMajor}.${header.versionMinor}, expected 2.x`);
    if (header.linkType !== LINKTYPE_ETHERNET) throw bad(this.path, `link type ${header.linkType} is not Ethernet (1)`);
    this.consume(HEADER_BYTES);
    return header;
  }

  /**
   * The next record, or null at the end of the file. Its data is a view into the reader's buffer,
   * valid until the next call. Throws NetError(BAD_CAPTURE) naming the offset of a bad record.
   */
  next(): PcapRecord | null {
    if (this.fd === null) throw new NetError(NetErrorCode.Closed, `${this.path} is closed`);
    if (!this.ensure(1)) return null;
    const at = this.fileOff;
    if (!this.ensure(RECORD_HEADER_BYTES)) throw bad(this.path, `record header at offset ${at} cut short: the file ends after ${this.end - this.pos} of its 16 bytes`);
    const { littleEndian: le, nanosecond } = this.header;
    const v = this.view;
    const sec = v.getUint32(this.pos, le);
    const frac = v.getUint32(this.pos + 4, le);
    const incl = v.getUint32(this.pos + 8, le);
    const orig = v.getUint32(this.pos + 12, le);
    if (incl > MAX_RECORD_BYTES) throw bad(this.path, `record at offset ${at} claims ${incl} bytes, more than any capture holds (${MAX_RECORD_BYTES})`);
    if (frac >= (nanosecond ? 1e9 : 1e6)) throw bad(this.path, `record at offset ${at}: sub-second field ${frac} out of range`);
    if (!this.ensure(RECORD_HEADER_BYTES + incl)) {
      throw bad(this.path, `record at offset ${at} claims ${incl} bytes but the file ends after ${this.end - this.pos - RECORD_HEADER_BYTES}`);
    }
    const start = this.pos + RECORD_HEADER_BYTES;
    this.consume(RECORD_HEADER_BYTES + incl);
    const timeNs = BigInt(sec) * 1_000_000_000n + BigInt(nanosecond ? frac : frac * 1000);
    return { timeNs, data: this.buf.subarray(start, start + incl), wireBytes: Math.max(orig, incl) };
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
