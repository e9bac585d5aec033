// The IPv4 id a RoCE v2 packet leaves with (IBTA annex A17: the ICRC covers it). vrdma seals every
// packet as if it travelled with id 0 and DF. Linux sends exactly that from a UDP socket with
// IP_MTU_DISCOVER = IP_PMTUDISC_DO (DF is then always set, and an unfragmentable datagram needs
// no id); with the default IP_PMTUDISC_WANT it sets DF but picks a hashed, changing id, so a peer
// that checks the ICRC against the header it received (Linux rxe) drops the packet.
//
// node:dgram cannot set the option, but the native addon can set it on the socket's fd. Node
// keeps a dgram socket's libuv handle under an internal symbol ("state symbol", lib/dgram.js; the
// public-looking `socket._handle` getter reads the same and is runtime-deprecated, DEP0112, so it
// would print a warning); on Linux the handle's `fd` getter returns the socket's descriptor once
// bound (before bind, UV_EBADF). Both are internals of Node: this finds them defensively and says
// why when it cannot.
import type dgram from 'node:dgram';
import { type NativeAddon, nativeStatus } from '../native/addon.js';

/** Whether a socket sends IPv4 id 0, and why not when it does not. */
export type IpIdZero = { readonly ipIdZero: true } | { readonly ipIdZero: false; readonly reason: string };

/** The fd of a bound node:dgram socket, or a reason it cannot be found. */
export function dgramSocketFd(socket: dgram.Socket): number | string {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  if (sym === undefined) return 'this Node keeps no "state symbol" on dgram sockets';
  const state = (socket as unknown as Record<symbol, unknown>)[sym] as { handle?: { fd?: unknown } } | undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number') return 'this Node\'s dgram handle has no fd getter';
  if (!(Number.isInteger(fd) && fd >= 0)) return `the dgram handle's fd is ${fd} (not bound, or not Linux)`;
  return fd;
}

/** Set IP_PMTUDISC_DO on a bound node:dgram socket through the native addon. Never throws. */
export function pinDgramIpIdZero(socket: dgram.Socket, native: NativeAddon | null = addonOrNull()): IpIdZero {
  if (native === null) {
    const status = nativeStatus();
    return { ipIdZero: false, reason: status.available ? 'native addon not used' : status.reason };
  }
  const fd = dgramSocketFd(socket);
  if (typeof fd === 'string') return { ipIdZero: false, reason: fd };
  try {
    native.socketSetOption(fd, 'IP_MTU_DISCOVER', native.udp.PMTUDISC.DO);
    if (native.socketGetOption(fd, 'IP_MTU_DISCOVER') !== native.udp.PMTUDISC.DO) {
      return { ipIdZero: false, reason: 'IP_MTU_DISCOVER did not stay IP_PMTUDISC_DO' };
    }
  } catch (err) {
    return { ipIdZero: false, reason: `setsockopt(IP_MTU_DISCOVER) failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { ipIdZero: true };
}

function addonOrNull(): NativeAddon | null {
  const status = nativeStatus();
  return status.available ? status.addon : null;
}
