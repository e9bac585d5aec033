// Writes test/fixtures/state/v1.bin: a device state (format version 1) with its provider state
// nested, from a device and provider built with fixed inputs, so the bytes are the same on every
// run. Run once per released format version, after `npm run build`:
//   node scripts/gen-state-golden.mjs [out]
// test/device/state-golden.test.ts checks that the file still loads and holds what is built here:
// a golden file is never regenerated for the version it is named after.
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import { setImmediate } from 'node:timers';
import { URL } from 'node:url';
import { AttrMask, QpTypeCode, SendFlag, SendOpcode } from '../dist/src/device/abi.js';
import { RdmaDevice } from '../dist/src/device/device.js';
import { RdmaGuest, ahAttr } from '../dist/src/guest/rdma/device.js';
import { Arena } from '../dist/src/memory/arena.js';
import { DeviceMemory } from '../dist/src/memory/device-memory.js';
import { LoopbackHub } from '../dist/src/net/loopback.js';
import { QpState } from '../dist/src/nic/qp-state.js';
import { SoftRoce } from '../dist/src/nic/soft/soft-roce.js';

const MiB = 1024 * 1024;
const IP = '127.0.23.31';
const PEER = '127.0.23.32';
const DATA = 8 * MiB;
const IOVA = 0x7f00_0000_0000;

const dm = DeviceMemory.create({ ramBytes: 16 * MiB, arenaBytes: 12 * MiB });
dm.addRegion(0, 16 * MiB);
const verbs = new SoftRoce(dm, new LoopbackHub().attach(IP));
const device = new RdmaDevice({ verbs, dm, vmIp: IP, inline: true, config: { maxCq: 8, maxQp: 8, maxSrq: 4, maxPd: 8, maxMr: 16, maxAh: 8 } });
const g = RdmaGuest.open(device.transport, dm.guest, new Arena(0x10000, DATA - 0x10000));
const pd = await g.createPd();
const cq = await g.createCq(16);
const cq2 = await g.createCq(8, { buffers: 1 });
const pages = Array.from({ length: 16 }, (_, i) => DATA + i * 4096);
const mr = await g.regPhysMr(pd, 0xf, { iova: IOVA, length: 16 * 4096, pageShift: 12, pages });
await g.getDmaMr(pd, 1);
const ah = await g.createAh(pd, ahAttr(PEER, 0));
const srq = await g.createSrq(pd, 8, 1, 0);
srq.postRecv([{ wrId: 0x5151n, sgList: [{ addr: IOVA, length: 64, lkey: mr.lkey }] }]);
const qp = await g.createQp({ pd, type: QpTypeCode.RC, sendCq: cq.cqn, recvCq: cq.cqn, cap: { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 2, maxRecvSge: 2, maxInlineData: 32 } });
await qp.modify(AttrMask.STATE | AttrMask.ACCESS_FLAGS, { qpState: QpState.Init, qpAccessFlags: 0xe });
await qp.modify(AttrMask.STATE | AttrMask.AV | AttrMask.PATH_MTU | AttrMask.DEST_QPN | AttrMask.RQ_PSN | AttrMask.MAX_DEST_RD_ATOMIC | AttrMask.MIN_RNR_TIMER,
  { qpState: QpState.Rtr, ahAttr: ahAttr(PEER, 0), pathMtu: 3, destQpNum: 0x1234, rqPsn: 0x300, maxDestRdAtomic: 4, minRnrTimer: 1 });
// Timeout 0: no local ACK timer, so nothing depends on time.
await qp.modify(AttrMask.STATE | AttrMask.SQ_PSN | AttrMask.TIMEOUT | AttrMask.RETRY_CNT | AttrMask.RNR_RETRY | AttrMask.MAX_QP_RD_ATOMIC,
  { qpState: QpState.Rts, sqPsn: 0x700, timeout: 0, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 });
const ud = await g.createQp({ pd, type: QpTypeCode.UD, sendCq: cq2.cqn, recvCq: cq2.cqn, cap: { maxSendWr: 8, maxRecvWr: 8, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
await ud.modify(AttrMask.STATE | AttrMask.QKEY, { qpState: QpState.Init, qkey: 0x2222 });
await ud.modify(AttrMask.STATE, { qpState: QpState.Rtr });
await ud.modify(AttrMask.STATE | AttrMask.SQ_PSN, { qpState: QpState.Rts, sqPsn: 9 });
qp.postRecv([{ wrId: 0x7001n, sgList: [{ addr: IOVA + 4096, length: 4096, lkey: mr.lkey }] }]);
qp.postSend([
  { wrId: 0x8001n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, inline: Uint8Array.of(1, 2, 3, 4) },
  { wrId: 0x8002n, opcode: SendOpcode.RdmaRead, flags: SendFlag.SIGNALED, remoteAddr: 0x1000, rkey: 0xabcd, sgList: [{ addr: IOVA + 8192, length: 2000, lkey: mr.lkey }] },
]);
ud.postSend([1, 2, 3].map((i) => ({ wrId: BigInt(0x9000 + i), opcode: SendOpcode.Send, flags: SendFlag.SIGNALED, ah, remoteQpn: 0x77, remoteQkey: 0x2222, sgList: [{ addr: IOVA, length: 64, lkey: mr.lkey }] })));
for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
const out = process.argv[2] ?? new URL('../test/fixtures/state/v1.bin', import.meta.url);
writeFileSync(out, device.saveState());
verbs.close();
process.stdout.write(`wrote ${out}\n`);
