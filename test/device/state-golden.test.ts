// The golden device state of format version 1 (test/fixtures/state/v1.bin, written once by
// scripts/gen-state-golden.mjs): it must keep decoding to the objects the generator built and keep
// restoring onto a device configured as the generator's was. A reader change that breaks this
// breaks every saved state of version 1.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RdmaDevice } from '../../src/device/device.js';
import { decodeDeviceState } from '../../src/device/state/codec.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { LoopbackHub } from '../../src/net/loopback.js';
import { QpState, QpType } from '../../src/nic/qp-state.js';
import { SoftRoce } from '../../src/nic/soft/soft-roce.js';
import { decodeSoftRoceState } from '../../src/nic/soft/state/codec.js';
import { WqeState } from '../../src/nic/roce/wqe.js';
import { WrOpcode } from '../../src/nic/types.js';
import { StateError, StateErrorCode, StateKind, openState } from '../../src/state/index.js';

const V1 = new Uint8Array(readFileSync(new URL('../../../test/fixtures/state/v1.bin', import.meta.url)));
// As scripts/gen-state-golden.mjs built it.
const MiB = 1024 * 1024;
const IP = '127.0.23.31';
const CONFIG = { maxCq: 8, maxQp: 8, maxSrq: 4, maxPd: 8, maxMr: 16, maxAh: 8 };

describe('golden state, format version 1', () => {
  it('is a version 1.0 device state', () => {
    const { header } = openState(V1, StateKind.Device);
    assert.deepEqual([header.major, header.minor, header.kind], [1, 0, StateKind.Device]);
  });

  it('decodes to the objects the generator made', () => {
    const s = decodeDeviceState(V1);
    assert.deepEqual(s.qps.map((q) => [q.qpn, q.index, q.kind, q.state]), [[16, 0, 'rc', QpState.Rts], [17, 1, 'ud', QpState.Rts]]);
    const rc = s.qps[0];
    assert.deepEqual(rc.sq.entries.map((e) => [e.wrId, e.cqe === null]), [[0x8001n, true], [0x8002n, true]]);
    assert.deepEqual(rc.rq.entries.map((e) => e.wrId), [0x7001n]);
    assert.deepEqual(s.cqs.map((c) => [c.index, c.depth, c.backlog.length, c.cqesWritten]), [[0, 16, 0, 0], [1, 8, 2, 1]]);
    assert.deepEqual(s.mrs.map((m) => [m.handle, m.kind, m.lkey]), [[1, 'phys', 0x101], [2, 'dma', 0x201]]);
    assert.deepEqual(s.srqs.map((x) => x.wq.entries.map((e) => e.wrId)), [[0x5151n]]);
    assert.deepEqual(s.allocators, { pd: 2, mr: 3, ah: 2, seq: 8 });
    assert.equal(s.gids[0].ip, IP);

    const p = decodeSoftRoceState(s.provider);
    assert.equal(p.localIp, IP);
    const q = p.qps[0];
    assert.deepEqual([q.qpn, q.type, q.state, q.req.psn, q.req.next, q.comp.psn], [16, QpType.Rc, QpState.Rts, 0x703, 2, 0x700]);
    assert.deepEqual(q.sq.map((w) => [w.opcode, w.state, w.firstPsn, w.psnCount]), [[WrOpcode.Send, WqeState.Pending, 0x700, 1], [WrOpcode.RdmaRead, WqeState.Pending, 0x701, 2]]);
    assert.deepEqual([...(q.sq[0].inline ?? [])], [1, 2, 3, 4]);
    assert.deepEqual([q.attrs.destQpNum, q.attrs.ahAttr.dgid, q.attrs.timeout], [0x1234, '127.0.23.32', 0]);
    assert.deepEqual(p.mrs.map((m) => [m.key, m.table.kind]), [[0x101, 'physical'], [0x201, 'all-memory']]);
    assert.deepEqual(p.allocators.keys.cursor, 3);
    assert.equal(p.counters.packetsSent, 5);
  });

  it('is refused at every shorter length, and with any byte damaged', () => {
    for (let n = 0; n < V1.length; n++) assert.throws(() => decodeDeviceState(V1.subarray(0, n)), (e) => e instanceof StateError && e.code === StateErrorCode.Truncated, `length ${n}`);
    for (let i = 28; i < V1.length; i += 7) {
      const bad = V1.slice();
      bad[i] ^= 0x10;
      assert.throws(() => decodeDeviceState(bad), (e) => e instanceof StateError && e.code === StateErrorCode.BadChecksum, `byte ${i}`);
    }
  });

  it('restores onto a device configured as the generator\'s', () => {
    const dm = DeviceMemory.create({ ramBytes: 16 * MiB, arenaBytes: 12 * MiB });
    dm.addRegion(0, 16 * MiB);
    const verbs = new SoftRoce(dm, new LoopbackHub().attach(IP));
    const device = new RdmaDevice({ verbs, dm, vmIp: IP, inline: true, config: CONFIG });
    device.restoreState(V1);
    assert.equal(device.qpState(16), QpState.Rts);
    assert.equal(verbs.queryQp(16).qpState, QpState.Suspended);
    const again = decodeDeviceState(device.saveState());
    assert.deepEqual({ ...again, provider: null }, { ...decodeDeviceState(V1), provider: null });
    verbs.close();
  });
});
