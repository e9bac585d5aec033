// The out-of-band address exchange of rdma-core's ibv_rc_pingpong (libibverbs/examples), so vrdma
// and the rdma-core example can meet over one TCP connection: each side's "LID:QPN:PSN:GID" as
// `%04x:%06x:%06x:%s`, the GID as 32 hex digits of its 16 bytes in order, 52 bytes with the NUL.
// The client sends its message, reads the server's, then writes "done\0"; the server reads the
// client's message, connects its QP (the caller's `connect`), sends its own and reads "done".
import net from 'node:net';
import { gidToIpv4, ipv4ToGid } from '../device/bytes.js';

export const PINGPONG_MESSAGE_BYTES = 52;
const DONE = Uint8Array.of(0x64, 0x6f, 0x6e, 0x65, 0); // "done\0"

export interface PingpongDest {
  lid: number;
  qpn: number;
  psn: number;
  gid: Uint8Array;
}

export function encodeDest(d: PingpongDest): Uint8Array {
  if (d.gid.length !== 16) throw new RangeError('a GID is 16 bytes');
  const hex = (n: number, width: number) => (n >>> 0).toString(16).padStart(width, '0');
  const gid = Array.from(d.gid, (b) => hex(b, 2)).join('');
  const text = `${hex(d.lid, 4)}:${hex(d.qpn, 6)}:${hex(d.psn, 6)}:${gid}`;
  const out = new Uint8Array(PINGPONG_MESSAGE_BYTES);
  out.set(new TextEncoder().encode(text).subarray(0, PINGPONG_MESSAGE_BYTES - 1));
  return out;
}

export function decodeDest(msg: Uint8Array): PingpongDest {
  const nul = msg.indexOf(0);
  const text = new TextDecoder().decode(msg.subarray(0, nul < 0 ? msg.length : nul));
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,8}):([0-9a-fA-F]{32})$/.exec(text);
  if (m === null) throw new PingpongProtocolError(`malformed address message "${text}"`);
  const gid = new Uint8Array(16);
  for (let i = 0; i < 16; i++) gid[i] = parseInt(m[4].slice(2 * i, 2 * i + 2), 16);
  return { lid: parseInt(m[1], 16), qpn: parseInt(m[2], 16) & 0xffffff, psn: parseInt(m[3], 16) & 0xffffff, gid };
}

/** The IPv4 address a RoCE v2 GID maps (vrdma's GIDs are IPv4-mapped, R7), or an error. */
export function gidIpv4(gid: Uint8Array): string {
  const ip = gidToIpv4(gid);
  if (ip === null) throw new PingpongProtocolError(`GID ${formatGid(gid)} is not an IPv4-mapped address`);
  return ip;
}

export function gidOfIpv4(ip: string): Uint8Array {
  return ipv4ToGid(ip);
}

/** A GID as inet_ntop(AF_INET6) prints it: "::ffff:a.b.c.d" for IPv4-mapped ones. */
export function formatGid(gid: Uint8Array): string {
  const ip = gidToIpv4(gid);
  if (ip !== null) return `::ffff:${ip}`;
  const words = Array.from({ length: 8 }, (_, i) => ((gid[2 * i] << 8) | gid[2 * i + 1]).toString(16));
  // Compress the longest run of zero words (RFC 5952 section 4.2).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

export class PingpongProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PingpongProtocolError';
  }
}

/** Reads exact byte counts from a stream socket. */
class ExactReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.have += c.length;
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
  }

  async read(n: number, what: string): Promise<Uint8Array> {
    while (this.have < n) {
      if (this.ended) throw new PingpongProtocolError(`connection closed after ${this.have} of ${n} bytes of ${what}`);
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.have -= n;
    return new Uint8Array(all.subarray(0, n));
  }
}

function write(socket: net.Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
}

function withErrors<T>(socket: net.Socket, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    socket.once('error', reject);
    work.then(resolve, reject);
  });
}

/** The client side: connect to `host:port`, send `mine`, read the server's, write "done". */
export async function clientExchange(host: string, port: number, mine: PingpongDest): Promise<PingpongDest> {
  const socket = net.connect({ host, port });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const reader = new ExactReader(socket);
    return await withErrors(socket, (async () => {
      await write(socket, encodeDest(mine));
      const theirs = decodeDest(await reader.read(PINGPONG_MESSAGE_BYTES, "the server's address"));
      await write(socket, DONE);
      return theirs;
    })());
  } finally {
    socket.destroy();
  }
}

/**
 * The server side: accept one connection on `port`, read the client's address, `connect` the QP
 * to it, send `mine`, read "done". `onListening` is told once the port accepts connections.
 */
export async function serverExchange(port: number, mine: PingpongDest, connect: (theirs: PingpongDest) => Promise<void>, onListening?: (port: number) => void): Promise<PingpongDest> {
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve, reject) => {
    server.once('connection', resolve);
    server.once('error', reject);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  onListening?.((server.address() as net.AddressInfo).port);
  const socket = await accepted;
  server.close();
  try {
    const reader = new ExactReader(socket);
    return await withErrors(socket, (async () => {
      const theirs = decodeDest(await reader.read(PINGPONG_MESSAGE_BYTES, "the client's address"));
      await connect(theirs);
      await write(socket, encodeDest(mine));
      const done = await reader.read(DONE.length, '"done"');
      if (!done.every((b, i) => b === DONE[i])) throw new PingpongProtocolError('the client did not say "done"');
      return theirs;
    })());
  } finally {
    socket.destroy();
  }
}
