// Two guests on this thread connected by RC QP pairs over real UDP, whose devices run as durable
// backends in a pool's workers (src/backend, durableGuest) or in a VM here, its QPs perhaps in
// shards (src/nic/shard, vmGuest): what the worker-crash demo, the backend and QP shard tests and
// the benchmarks drive. Each guest registers one data area (a physical MR at an IOVA, R1).
import { AccessFlag, QpTypeCode } from '../device/abi.js';
import { BackendPool, type BackendPoolOptions, type DurableDevice, type OpenDeviceOptions } from '../backend/backend-pool.js';
import { type OpenOptions, RdmaGuest } from '../guest/rdma/device.js';
import type { GuestCq, GuestQp } from '../guest/rdma/objects.js';
import { connectRc } from '../host/connect.js';
import { Arena } from '../memory/arena.js';
import type { DeviceMemory } from '../memory/device-memory.js';
import type { Vm } from '../host/vm.js';

const MiB = 1024 * 1024;
export const RAM = 32 * MiB;
/** Guest-physical layout: rings and driver buffers below DATA, the registered data area from DATA. */
export const DATA = 16 * MiB;
export const DATA_BYTES = 8 * MiB;
export const IOVA = 0x7f00_0000_0000;
export const ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC;

/** A guest with `qps` RC QPs on one CQ and its data area registered, over a device at `device.ip`. */
export interface PairGuest {
  device: { readonly ip: string; readonly dm: DeviceMemory };
  guest: RdmaGuest;
  pd: number;
  cq: GuestCq;
  qps: GuestQp[];
  lkey: number;
  rkey: number;
}

export interface DurableGuest extends PairGuest {
  device: DurableDevice;
}

/** Run `fn` with a backend pool made with `options`, and close the pool however it ends. */
export async function withPool<T>(options: BackendPoolOptions, fn: (pool: BackendPool) => Promise<T>): Promise<T> {
  const pool = new BackendPool(options);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

/** How the guest of durableGuest() opens its device and sizes its queues. */
export interface GuestShape {
  open?: OpenOptions;
  /** CQ entries (default 4096). */
  cqEntries?: number;
  /** Send queue depth of each QP (default 256). */
  maxSendWr?: number;
}

/** A device in `pool` and a guest driving it from this thread, with `qps` RC QPs on one CQ. */
export async function durableGuest(pool: BackendPool, ip: string, qps = 1, options: Omit<OpenDeviceOptions, 'ip' | 'ramBytes'> = {}, shape: GuestShape = {}): Promise<DurableGuest> {
  const device = await pool.open({ ...options, ip, ramBytes: RAM });
  try {
    const guest = RdmaGuest.open(device.transport, device.dm.guest, new Arena(0x10000, DATA - 0x10000), shape.open);
    return { device, ...(await setUp(guest, qps, shape)) };
  } catch (err) {
    await device.close();
    throw err;
  }
}

/**
 * The guest of `vm` (a VM of at least RAM bytes on this thread, built with Vm.open) set up as
 * durableGuest sets one up. The data area is above the VM's driver area; nothing else of the VM
 * may allocate there.
 */
export async function vmGuest(vm: Vm, qps = 1, shape: Omit<GuestShape, 'open'> = {}): Promise<PairGuest> {
  if (vm.dm.layout.ramBytes < RAM) throw new RangeError(`a pair's VM needs ${RAM} bytes of RAM`);
  return { device: { ip: vm.ip, dm: vm.dm }, ...(await setUp(vm.guest, qps, shape)) };
}

async function setUp(guest: RdmaGuest, qps: number, shape: GuestShape): Promise<Omit<PairGuest, 'device'>> {
  const pd = await guest.createPd();
  const cq = await guest.createCq(shape.cqEntries ?? 4096);
  const list: GuestQp[] = [];
  for (let i = 0; i < qps; i++) {
    list.push(await guest.createQp({
      pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn,
      cap: { maxSendWr: shape.maxSendWr ?? 256, maxRecvWr: 256, maxSendSge: 4, maxRecvSge: 4, maxInlineData: 64 },
    }));
  }
  const pages = Array.from({ length: DATA_BYTES / 4096 }, (_, i) => DATA + i * 4096);
  const mr = await guest.regPhysMr(pd, ACCESS, { iova: IOVA, length: DATA_BYTES, pageShift: 12, pages });
  return { guest, pd, cq, qps: list, lkey: mr.lkey, rkey: mr.rkey };
}

/** Connect a's QP i with b's QP i, for every i. */
export async function connectPair(a: PairGuest, b: PairGuest): Promise<void> {
  for (let i = 0; i < a.qps.length; i++) await connectQps(a, b, i, 0x100 * (i + 1), 0x900 * (i + 1));
}

/** Connect a's QP i (first PSN psnA) with b's QP i (psnB), both in RESET. */
export async function connectQps(a: PairGuest, b: PairGuest, i: number, psnA: number, psnB: number): Promise<void> {
  // Local ACK timeout 12 (16.8 ms, IBTA 4.096 µs × 2^12): with the retransmission backoff, a peer keeps
  // retrying for about 0.75 s, longer than a device takes to come back from its journal.
  const attrs = { access: ACCESS, timeout: 12, retryCnt: 7, rnrRetry: 7 };
  const [qa, qb] = [a.qps[i], b.qps[i]];
  await connectRc(qa, psnA, { ip: b.device.ip, qpn: qb.qpn, psn: psnB }, attrs);
  await connectRc(qb, psnB, { ip: a.device.ip, qpn: qa.qpn, psn: psnA }, attrs);
}
