// The far end of the ring-hop bench (ring-hop.ts): a worker thread that sends every datagram it
// reads from one packet ring back through the other, through the RingLink a device backend or a
// pool VM uses when the main thread holds its socket. Not a bench suite itself.
import { workerData } from 'node:worker_threads';
import { RingLink } from '../src/backend/ring-link.js';

const { rings } = workerData as { rings: { tx: SharedArrayBuffer; rx: SharedArrayBuffer } };
const link = new RingLink('127.0.0.2', 4791, rings);
link.onPacket((bytes, from) => link.send(bytes, from.ip, from.port));
// Atomics.waitAsync does not keep a thread's event loop alive: this does, until the bench ends the worker.
setInterval(() => {}, 1 << 30);
