// Bench suite "net": RoCE-sized packets one way over loopback, UdpLink (node:dgram, one system
// call per packet each way) beside BatchedUdpLink (native sendmmsg/recvmmsg), in one process.
// Each step sends a window of packets in one turn and waits until all have arrived, so nothing
// is lost to full socket buffers and the rate is packets delivered per second.
import { nativeStatus } from '../src/native/addon.js';
import { BatchedUdpLink } from '../src/net/batched-udp-link.js';
import { UdpLink } from '../src/net/udp-link.js';
import type { Link } from '../src/nic/link.js';
import { type BenchRow, withRatios } from './harness.js';

const SIZES = [64, 1024, 4128];
/** 16 packets of 4 KiB fit the kernel's default receive buffer, which BatchedUdpLink keeps. */
const WINDOW = 16;
const TIME_MS = 700;

type Opener = (ip: string) => Promise<Link & { close(): Promise<void> }>;

async function measure(open: Opener, sizeBytes: number): Promise<number> {
  const a = await open('127.0.4.1');
  const b = await open('127.0.4.2');
  const packet = new Uint8Array(sizeBytes).fill(0x5a);
  let arrived = 0;
  let wake: (() => void) | null = null;
  b.onPacket(() => {
    if (++arrived % WINDOW === 0) wake?.();
  });
  const step = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      for (let i = 0; i < WINDOW; i++) a.send(packet, '127.0.4.2', b.localPort);
    });
  for (let i = 0; i < 50; i++) await step();
  const start = performance.now();
  const first = arrived;
  while (performance.now() - start < TIME_MS) await step();
  const rate = ((arrived - first) * 1000) / (performance.now() - start);
  await Promise.all([a.close(), b.close()]);
  return rate;
}

export default async function netSuite(): Promise<BenchRow[]> {
  const engines: [string, Opener][] = [['dgram', (ip) => UdpLink.open({ ip, port: 0 })]];
  const status = nativeStatus();
  if (status.available) engines.push(['native', (ip) => BatchedUdpLink.open({ ip, port: 0 })]);
  else console.error(`net: no native rows: ${status.reason}`);
  const rows: BenchRow[] = [];
  for (const size of SIZES) {
    for (const [engine, open] of engines) {
      const pps = await measure(open, size);
      rows.push({ suite: 'net', name: `loopback ${size} B x${WINDOW}`, engine, unit: 'packet', opsPerSec: pps, gbitPerSec: Number(((pps * size * 8) / 1e9).toFixed(2)) });
    }
  }
  return withRatios(rows, 'dgram');
}
