// A worker thread that floods a VM with RDMA WRITE-only requests whose ICRC is noise (pool-flood's
// sender): it runs apart from the test's main thread so a pool whose main thread holds the VMs'
// sockets (socket 'main') reads while the flood is sent. Posts { sent } when done. Not a test file.
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { setBthAt } from '../../src/nic/roce/headers.js';

export interface FloodOrder {
  /** Address the flood leaves from, and the VM it goes to. */
  from: string;
  to: string;
  qpns: number[];
  packets: number;
  bytes: number;
}

const order = workerData as FloodOrder;
const sock = dgram.createSocket('udp4');
await new Promise<void>((resolve) => sock.bind(0, order.from, resolve));
const packet = Buffer.alloc(order.bytes);
let sent = 0;
while (sent < order.packets) {
  const batch: Promise<void>[] = [];
  for (let i = 0; i < 512 && sent < order.packets; i++, sent++) {
    randomFillSync(packet);
    // RDMA WRITE Only (RC opcode 0x0a) to one of the VM's QPs at a random PSN.
    setBthAt(packet, 0, { opcode: 0x0a, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: 0xffff, fecn: false, becn: false, dqpn: order.qpns[sent % order.qpns.length], ackReq: true, psn: packet[20] << 8 });
    batch.push(new Promise((resolve) => sock.send(packet, 4791, order.to, () => resolve())));
  }
  await Promise.all(batch);
}
sock.close();
parentPort?.postMessage({ sent });
