// Datagrams the kernel dropped for one UDP socket because its receive buffer was full. They never
// reach the process, so no counter of ours sees them: they are loss like any other on the wire,
// and a test that asserts "no loss" must count them. Linux shows them per socket in the last
// column ("drops") of /proc/net/udp, keyed by the bound address and port; the system-wide sum is
// Udp RcvbufErrors in /proc/net/snmp. Elsewhere (or when /proc is not mounted) the answer is null.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { ipv4 } from '../nic/roce/icrc.js';

const PROC_NET_UDP = '/proc/net/udp';

/** The local_address column for ip:port: the address as the kernel's u32 in host order, hex. */
function procAddress(ip: string, port: number): string {
  const be = ipv4(ip) >>> 0;
  const host = endianness() === 'LE' ? (((be & 0xff) << 24) | ((be & 0xff00) << 8) | ((be >>> 8) & 0xff00) | (be >>> 24)) >>> 0 : be;
  return `${host.toString(16).toUpperCase().padStart(8, '0')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Receive-buffer drops of the UDP socket bound to ip:port, or null if the kernel does not say. */
export function udpSocketDrops(ip: string, port: number, table: string | null = readTable()): number | null {
  if (table === null) return null;
  const want = procAddress(ip, port);
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
    if (cols.length >= 13 && cols[1] === want) return Number(cols[12]);
  }
  return null;
}

function readTable(): string | null {
  try {
    return readFileSync(PROC_NET_UDP, 'utf8');
  } catch {
    return null;
  }
}
