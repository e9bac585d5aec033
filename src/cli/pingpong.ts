// `vrdma pingpong`: rdma-core's ibv_rc_pingpong run by a guest on a vrdma VM. The same options,
// address exchange (src/host/pingpong-exchange.ts), QP attributes and message pattern, so a run
// between two vrdma processes reads like one between two hosts with RDMA NICs: rx_depth receives
// posted up front, the client sends first, and each side sends again once its previous send and
// a receive have completed; buffers are filled with 0x7b. The VM's address (--ip) is its GID.
import { randomInt } from 'node:crypto';
import { AccessFlag, CqeStatus, QpTypeCode, SendFlag, SendOpcode } from '../device/abi.js';
import type { Cqe } from '../device/cqe.js';
import type { GuestCq, GuestQp } from '../guest/rdma/objects.js';
import type { SendRequest } from '../guest/rdma/wqe.js';
import { type RcAttributes, rcToInit, rcToRts } from '../host/connect.js';
import { type PingpongDest, clientExchange, formatGid, gidIpv4, gidOfIpv4, serverExchange } from '../host/pingpong-exchange.js';
import { Vm } from '../host/vm.js';
import { PathMtu } from '../nic/types.js';

export const PINGPONG_DEFAULTS = { port: 18515, size: 4096, iters: 1000, mtu: 1024, rxDepth: 500, gidIndex: 0, ip: '127.0.1.1' };

export interface PingpongOptions {
  /** The server's host name; absent: be the server. */
  server?: string;
  port: number;
  size: number;
  iters: number;
  mtu: number;
  rxDepth: number;
  gidIndex: number;
  /** The VM's IPv4 address: its link binds it and it is GID 0. */
  ip: string;
  capture?: string;
  /** Told the TCP port once the server listens (tests pass -p 0). */
  onListening?: (port: number) => void;
  out?: (line: string) => void;
}

const RECV_WRID = 1n;
const SEND_WRID = 2n;

const MTU_ENUM = new Map<number, PathMtu>([[256, PathMtu.Mtu256], [512, PathMtu.Mtu512], [1024, PathMtu.Mtu1024], [2048, PathMtu.Mtu2048], [4096, PathMtu.Mtu4096]]);

export function pingpongMtu(bytes: number): PathMtu | undefined {
  return MTU_ENUM.get(bytes);
}

const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, '0')}`;
const describe = (d: PingpongDest) => `LID ${hex(d.lid, 4)}, QPN ${hex(d.qpn, 6)}, PSN ${hex(d.psn, 6)}, GID ${formatGid(d.gid)}`;

/** Run one side; resolves with the exit status (0 on success) after printing rc_pingpong's lines. */
export async function runPingpong(o: PingpongOptions): Promise<number> {
  const out = o.out ?? ((line: string) => console.log(line));
  const mtu = pingpongMtu(o.mtu);
  if (mtu === undefined) throw new RangeError(`MTU ${o.mtu} is not one of 256, 512, 1024, 2048, 4096`);
  if (o.gidIndex !== 0) throw new RangeError(`GID index ${o.gidIndex}: a vrdma VM has one GID, index 0 (its address, --ip)`);
  if (o.rxDepth < 2) throw new RangeError('rx depth must be at least 2');
  const vm = await Vm.open({ ip: o.ip, capturePath: o.capture, ramBytes: Math.max(16 << 20, 8 * o.size + (8 << 20)) });
  try {
    const g = vm.guest;
    const pd = await g.createPd();
    const buf = vm.allocBuffer(Math.max(o.size, 1), 4096);
    vm.fillBuffer(buf, o.size, 0x7b);
    const pages = Array.from({ length: Math.max(1, Math.ceil(o.size / 4096)) }, (_, i) => buf + 4096 * i);
    const mr = await g.regUserMr(pd, AccessFlag.LOCAL_WRITE, buf, Math.max(o.size, 1), pages);
    const cq = await g.createCq(o.rxDepth + 1);
    const qp = await g.createQp({
      pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn,
      cap: { maxSendWr: 1, maxRecvWr: o.rxDepth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 },
    });
    const caps = (await qp.query()).cap;
    const inline = caps.maxInlineData >= o.size;
    const attrs: Partial<RcAttributes> = { pathMtu: mtu, access: 0, sgidIndex: o.gidIndex };
    await rcToInit(qp, attrs);

    const sge = { addr: buf, length: o.size, lkey: mr.lkey };
    const postRecvs = (n: number) => qp.postRecv(Array.from({ length: n }, () => ({ wrId: RECV_WRID, sgList: [sge] })));
    const send: SendRequest = inline
      ? { wrId: SEND_WRID, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, inline: vm.bytes(buf, o.size).slice() }
      : { wrId: SEND_WRID, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, sgList: [sge] };
    postRecvs(o.rxDepth);

    const mine: PingpongDest = { lid: 0, qpn: qp.qpn, psn: randomInt(0x1000000), gid: gidOfIpv4(o.ip) };
    out(`  local address:  ${describe(mine)}`);
    const connect = (theirs: PingpongDest) => rcToRts(qp, mine.psn, { ip: gidIpv4(theirs.gid), qpn: theirs.qpn, psn: theirs.psn }, attrs);
    const theirs = o.server !== undefined
      ? await clientExchange(o.server, o.port, mine)
      : await serverExchange(o.port, mine, connect, o.onListening);
    out(`  remote address: ${describe(theirs)}`);
    if (o.server !== undefined) await connect(theirs);

    const started = process.hrtime.bigint();
    await exchange(qp, cq, o, send, postRecvs);
    const usec = Number(process.hrtime.bigint() - started) / 1000;
    const bytes = o.size * o.iters * 2;
    out(`${bytes} bytes in ${(usec / 1e6).toFixed(2)} seconds = ${((bytes * 8) / usec).toFixed(2)} Mbit/sec`);
    out(`${o.iters} iters in ${(usec / 1e6).toFixed(2)} seconds = ${(usec / o.iters).toFixed(2)} usec/iter`);
    return 0;
  } finally {
    await vm.close();
  }
}

export class PingpongCompletionError extends Error {
  constructor(readonly cqe: Cqe) {
    super(`Failed status ${CqeStatus[cqe.status] ?? cqe.status} (${cqe.status}) for wr_id ${cqe.wrId}`);
    this.name = 'PingpongCompletionError';
  }
}

/** rc_pingpong's loop: `pending` holds the WR ids still owed before the next send may go. */
async function exchange(qp: GuestQp, cq: GuestCq, o: PingpongOptions, send: SendRequest, postRecvs: (n: number) => void): Promise<void> {
  let routs = o.rxDepth;
  let scnt = 0;
  let rcnt = 0;
  let pending = RECV_WRID;
  if (o.server !== undefined) {
    qp.postSend([send]);
    pending |= SEND_WRID;
  }
  while (rcnt < o.iters || scnt < o.iters) {
    const wcs = cq.poll(2);
    if (wcs.length === 0) {
      // Let the socket and the provider's timers run; then poll again (busy polling).
      await new Promise((resolve) => setImmediate(resolve));
      continue;
    }
    for (const wc of wcs) {
      if (wc.status !== CqeStatus.Success) throw new PingpongCompletionError(wc);
      if (wc.wrId === SEND_WRID) {
        scnt++;
      } else if (wc.wrId === RECV_WRID) {
        if (--routs <= 1) {
          postRecvs(o.rxDepth - routs);
          routs = o.rxDepth;
        }
        rcnt++;
      } else {
        throw new Error(`Completion for unknown wr_id ${wc.wrId}`);
      }
      pending &= ~wc.wrId;
      if (scnt < o.iters && pending === 0n) {
        qp.postSend([send]);
        pending = RECV_WRID | SEND_WRID;
      }
    }
  }
}
