// Checks of the addresses a link binds and sends to. Dotted IPv4 only: a name would send dgram
// to the resolver on the datapath, and RoCE v2 GIDs here are IPv4 addresses (R7).
import { isIPv4 } from 'node:net';
import { ROCE_UDP_PORT } from '../nic/link.js';
import { ipv4 } from '../nic/roce/icrc.js';
import { NetError, NetErrorCode } from './errors.js';

export function checkIpv4(ip: string, what: string): void {
  if (typeof ip !== 'string' || !isIPv4(ip)) throw new NetError(NetErrorCode.InvalidAddress, `${what} ${String(ip)} is not a dotted IPv4 address`);
}

/** A port to bind: 0 (any free one) through 65535. */
export function checkBindPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new NetError(NetErrorCode.InvalidAddress, `${what} port ${port} is not in 0..65535`);
}

/** A port to send to: 1 through 65535. */
export function checkDestPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new NetError(NetErrorCode.InvalidAddress, `destination port ${port} is not in 1..65535`);
}

/**
 * A link's send-side destination check: the address is parsed only when it changes from the last
 * send's (a stream sends to one peer), and kept as a host-order number for sendmmsg.
 */
export class DestinationCheck {
  private last = '';
  /** The last checked address as a host-order number (127.0.0.2 is 0x7f000002). */
  u32 = 0;

  /** Throws NetError INVALID_ADDRESS for a malformed address or port: the caller's bug. */
  check(ip: string, port: number): void {
    if (ip !== this.last) {
      checkIpv4(ip, 'destination');
      this.last = ip;
      this.u32 = ipv4(ip);
    }
    if (port !== ROCE_UDP_PORT) checkDestPort(port);
  }
}
