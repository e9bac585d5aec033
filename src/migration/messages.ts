// The bodies of the migration protocol's messages (frame.ts gives their numbers): one encoder and
// one validating decoder per message. Decoders treat the peer as hostile: every count is checked
// against the body's length before anything is allocated for it.
import { FieldWriter } from '../state/writer.js';
import { BodyReader } from './body.js';
import { MigrationError, MigrationErrorCode } from './errors.js';
import { FRAME_HEADER_BYTES, MessageType, encodeFrame } from './frame.js';

/** Bumped on any change to a message body; both sides must speak the same one. */
export const PROTOCOL_VERSION = 2;
const MAGIC = new TextEncoder().encode('vrdmamig');
/** Guest pages are 4 KiB, as the dirty log's bits are (vhost-user log format). */
export const PAGE_BYTES = 4096;
/** At most this many regions (the region table's capacity). */
export const MAX_REGIONS = 64;

// ---- HELLO / HELLO_ACK -------------------------------------------------------------------------

export interface RegionSpec {
  gpa: number;
  size: number;
}

export interface Hello {
  version: number;
  /** The VM's IPv4 address (its GID 0), which moves with it. */
  ip: string;
  /** The device memory's RAM window (maxmem) and arena sizes, to lay out the same memory. */
  ramBytes: number;
  arenaBytes: number;
  /** Guest RAM regions by guest-physical address. */
  regions: RegionSpec[];
  /** How long the destination watches for each QP's first completion after resume. */
  blackoutWatchMs: number;
}

export function encodeHello(h: Omit<Hello, 'version'>, version = PROTOCOL_VERSION): Uint8Array {
  const w = new FieldWriter(64).raw(MAGIC).u32(version).str(h.ip).u64(h.ramBytes).u64(h.arenaBytes).u32(h.blackoutWatchMs).u16(h.regions.length);
  for (const r of h.regions) w.u64(r.gpa).u64(r.size);
  return encodeFrame(MessageType.Hello, w.finish());
}

export function decodeHello(body: Uint8Array): Hello {
  const r = new BodyReader(body, 'HELLO');
  const magic = r.bytesOf(MAGIC.length);
  if (!magic.every((b, i) => b === MAGIC[i])) throw new MigrationError(MigrationErrorCode.Version, 'HELLO does not start with the migration magic: not a vrdma migration stream');
  const version = r.u32();
  if (version !== PROTOCOL_VERSION) {
    throw new MigrationError(MigrationErrorCode.Version, `the source speaks protocol version ${version}, this host speaks ${PROTOCOL_VERSION}`);
  }
  const ip = r.text();
  if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(ip) || ip.split('.').some((p) => Number(p) > 255)) r.fail(`"${ip}" is not an IPv4 address`);
  const ramBytes = r.u53();
  const arenaBytes = r.u53();
  const blackoutWatchMs = r.u32();
  const n = r.u16();
  if (n === 0 || n > MAX_REGIONS) r.fail(`${n} regions (1..${MAX_REGIONS})`);
  if (r.remaining !== n * 16) r.fail(`${n} regions need ${n * 16} bytes, the body has ${r.remaining}`);
  const regions: RegionSpec[] = [];
  for (let i = 0; i < n; i++) {
    const region = { gpa: r.u53(), size: r.u53() };
    if (region.gpa % PAGE_BYTES !== 0 || region.size % PAGE_BYTES !== 0 || region.size === 0 || !Number.isSafeInteger(region.gpa + region.size)) {
      r.fail(`region ${region.gpa}+${region.size} is not whole 4 KiB pages`);
    }
    // The dirty log numbers pages with u32 (16 TiB of GPA space).
    if ((region.gpa + region.size) / PAGE_BYTES > 2 ** 32) r.fail(`region ${region.gpa}+${region.size} lies beyond 16 TiB`);
    regions.push(region);
  }
  r.end();
  return { version, ip, ramBytes, arenaBytes, regions, blackoutWatchMs };
}

export function encodeHelloAck(version = PROTOCOL_VERSION): Uint8Array {
  return encodeFrame(MessageType.HelloAck, new FieldWriter(64).u32(version).finish());
}

export function decodeHelloAck(body: Uint8Array): number {
  const r = new BodyReader(body, 'HELLO_ACK');
  const version = r.u32();
  r.end();
  if (version !== PROTOCOL_VERSION) {
    throw new MigrationError(MigrationErrorCode.Version, `the destination speaks protocol version ${version}, this host speaks ${PROTOCOL_VERSION}`);
  }
  return version;
}

// ---- PAGES / ROUND_END -------------------------------------------------------------------------

export const enum PageKind {
  /** All zeros: no bytes follow for it. */
  Zero = 0,
  /** 4096 bytes follow. */
  Raw = 1,
}

/** Pages per PAGES frame: 1 MiB of data at most, so a batch never holds the link for long. */
export const PAGES_PER_BATCH = 256;

/**
 * Builds one PAGES frame in place, header included. Body: u32 round, u32 count, the bytes of the
 * non-zero pages, then count u32 page numbers and count u8 kinds. Guest bytes are copied once,
 * straight into the frame that goes to the socket.
 */
export class PageBatch {
  private readonly frame: Uint8Array;
  private readonly numbers: Uint32Array;
  private readonly kinds: Uint8Array;
  private count = 0;
  private rawCount = 0;

  constructor(readonly round: number, readonly capacity = PAGES_PER_BATCH) {
    this.frame = new Uint8Array(FRAME_HEADER_BYTES + 8 + capacity * (PAGE_BYTES + 5));
    this.numbers = new Uint32Array(capacity);
    this.kinds = new Uint8Array(capacity);
  }

  get length(): number {
    return this.count;
  }
  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Add page `pageNo` with its 4096 bytes; true if it is all zeros (5 bytes on the wire). */
  add(pageNo: number, bytes: Uint8Array): boolean {
    if (this.full) throw new RangeError('page batch is full');
    const zero = isZeroPage(bytes);
    this.numbers[this.count] = pageNo;
    this.kinds[this.count] = zero ? PageKind.Zero : PageKind.Raw;
    if (!zero) {
      this.frame.set(bytes, FRAME_HEADER_BYTES + 8 + this.rawCount * PAGE_BYTES);
      this.rawCount++;
    }
    this.count++;
    return zero;
  }

  /** The frame (a view of the batch's buffer; the batch is done). */
  finish(): Uint8Array {
    const n = this.count;
    const dataEnd = FRAME_HEADER_BYTES + 8 + this.rawCount * PAGE_BYTES;
    const bodyBytes = dataEnd - FRAME_HEADER_BYTES + 5 * n;
    const v = new DataView(this.frame.buffer);
    v.setUint32(0, bodyBytes, true);
    v.setUint16(4, MessageType.Pages, true);
    v.setUint32(FRAME_HEADER_BYTES, this.round, true);
    v.setUint32(FRAME_HEADER_BYTES + 4, n, true);
    for (let i = 0; i < n; i++) v.setUint32(dataEnd + 4 * i, this.numbers[i], true);
    this.frame.set(this.kinds.subarray(0, n), dataEnd + 4 * n);
    return this.frame.subarray(0, FRAME_HEADER_BYTES + bodyBytes);
  }
}

function isZeroPage(bytes: Uint8Array): boolean {
  // Four bytes at a time when aligned (guest pages are): the common case of a fresh page.
  if (bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0) {
    const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export interface DecodedPages {
  round: number;
  pageNos: Uint32Array;
  kinds: Uint8Array;
  /** The Raw pages' bytes, in order. */
  data: Uint8Array;
}

export function decodePages(body: Uint8Array): DecodedPages {
  const r = new BodyReader(body, 'PAGES');
  const round = r.u32();
  const n = r.u32();
  if (n > r.remaining / 5) r.fail(`${n} pages announced in ${r.remaining} bytes`);
  const dataBytes = r.remaining - 5 * n;
  if (dataBytes % PAGE_BYTES !== 0) r.fail(`${dataBytes} bytes of page data is not whole pages`);
  const data = r.bytesOf(dataBytes);
  const numbers = r.bytesOf(4 * n);
  const nv = new DataView(numbers.buffer, numbers.byteOffset, numbers.byteLength);
  const pageNos = Uint32Array.from({ length: n }, (_, i) => nv.getUint32(4 * i, true));
  const kinds = r.bytesOf(n);
  r.end();
  let raw = 0;
  for (let i = 0; i < n; i++) {
    if (kinds[i] === PageKind.Raw) raw++;
    else if (kinds[i] !== PageKind.Zero) r.fail(`page kind ${kinds[i]} is not defined`);
  }
  if (raw * PAGE_BYTES !== dataBytes) r.fail(`${raw} non-zero pages need ${raw * PAGE_BYTES} bytes of data, the body has ${dataBytes}`);
  return { round, pageNos, kinds, data };
}

export interface RoundEnd {
  round: number;
  /** Pages sent in the round (zero pages included). */
  pages: number;
  /** The stop-and-copy round: device, guest and application state follow. */
  final: boolean;
}

export function encodeRoundEnd(e: RoundEnd): Uint8Array {
  return encodeFrame(MessageType.RoundEnd, new FieldWriter(64).u32(e.round).u32(e.pages).u8(e.final ? 1 : 0).finish());
}

export function decodeRoundEnd(body: Uint8Array): RoundEnd {
  const r = new BodyReader(body, 'ROUND_END');
  const e = { round: r.u32(), pages: r.u32(), final: r.u8() };
  r.end();
  if (e.final > 1) r.fail(`final flag ${e.final}`);
  return { ...e, final: e.final === 1 };
}

// ---- SWITCHOVER / CONFIRM / BLACKOUT -----------------------------------------------------------

/** A QP and an instant (ms since the epoch, sub-ms resolution; NaN for "never"). */
export interface QpInstant {
  qpn: number;
  at: number;
}

export interface Switchover {
  /** The source's last guest activity: when pauseGuest() returned. */
  guestPausedAt: number;
  /** When each QP was suspended on the source. */
  suspended: QpInstant[];
}

function writeInstants(w: FieldWriter, list: readonly QpInstant[]): FieldWriter {
  w.u32(list.length);
  for (const q of list) w.u32(q.qpn).f64(q.at);
  return w;
}

function readInstants(r: BodyReader): QpInstant[] {
  const n = r.u32();
  if (n > r.remaining / 12) r.fail(`${n} QPs announced in ${r.remaining} bytes`);
  const out: QpInstant[] = [];
  for (let i = 0; i < n; i++) out.push({ qpn: r.u32(), at: r.f64() });
  return out;
}

export function encodeSwitchover(s: Switchover): Uint8Array {
  return encodeFrame(MessageType.Switchover, writeInstants(new FieldWriter(64).f64(s.guestPausedAt), s.suspended).finish());
}

export function decodeSwitchover(body: Uint8Array): Switchover {
  const r = new BodyReader(body, 'SWITCHOVER');
  const s = { guestPausedAt: r.f64(), suspended: readInstants(r) };
  r.end();
  return s;
}

/** The destination's side of the switchover: when the guest resumed, and what took how long. */
export interface Confirm {
  guestResumedAt: number;
  /** The trial restore of the STATE_PREVIEW (before the guest stopped); 0 without one. */
  vetMs: number;
  /** restoreVm: the device, guest driver and application state, and binding the address. */
  restoreMs: number;
  /** Resuming every suspended QP and then the guest. */
  resumeMs: number;
}

export function encodeConfirm(c: Confirm): Uint8Array {
  return encodeFrame(MessageType.Confirm, new FieldWriter(64).f64(c.guestResumedAt).f64(c.vetMs).f64(c.restoreMs).f64(c.resumeMs).finish());
}

export function decodeConfirm(body: Uint8Array): Confirm {
  const r = new BodyReader(body, 'CONFIRM');
  const c = { guestResumedAt: r.f64(), vetMs: r.f64(), restoreMs: r.f64(), resumeMs: r.f64() };
  r.end();
  for (const [k, v] of Object.entries(c)) if (!Number.isFinite(v) || (k !== 'guestResumedAt' && v < 0)) r.fail(`${k} ${v}`);
  return c;
}

// ---- STATE_PREVIEW -----------------------------------------------------------------------------

/** A device state and a guest state taken while the guest ran (vetted, never restored for real). */
export interface StatePreview {
  deviceState: Uint8Array;
  guestState: Uint8Array;
}

export function encodeStatePreview(p: StatePreview): Uint8Array {
  const head = new FieldWriter(16).u32(p.deviceState.length).u32(p.guestState.length).finish();
  return encodeFrame(MessageType.StatePreview, head, p.deviceState, p.guestState);
}

export function decodeStatePreview(body: Uint8Array): StatePreview {
  const r = new BodyReader(body, 'STATE_PREVIEW');
  const deviceBytes = r.u32();
  const guestBytes = r.u32();
  if (r.remaining !== deviceBytes + guestBytes) r.fail(`states of ${deviceBytes} and ${guestBytes} bytes, the body has ${r.remaining}`);
  const p = { deviceState: r.bytesOf(deviceBytes), guestState: r.bytesOf(guestBytes) };
  r.end();
  return p;
}

/** When each QP resumed on the destination and completed its first work request after that. */
export interface Blackout {
  resumed: QpInstant[];
  firstCompletion: QpInstant[];
}

export function encodeBlackout(b: Blackout): Uint8Array {
  return encodeFrame(MessageType.Blackout, writeInstants(writeInstants(new FieldWriter(64), b.resumed), b.firstCompletion).finish());
}

export function decodeBlackout(body: Uint8Array): Blackout {
  const r = new BodyReader(body, 'BLACKOUT');
  const b = { resumed: readInstants(r), firstCompletion: readInstants(r) };
  r.end();
  return b;
}

// ---- ABORT -------------------------------------------------------------------------------------

export interface Abort {
  code: string;
  reason: string;
}

export function encodeAbort(a: Abort): Uint8Array {
  return encodeFrame(MessageType.Abort, new FieldWriter(64).str(a.code.slice(0, 64)).str(a.reason.slice(0, 4096)).finish());
}

export function decodeAbort(body: Uint8Array): Abort {
  const r = new BodyReader(body, 'ABORT');
  const a = { code: r.text(), reason: r.text() };
  r.end();
  return a;
}
