// The transport (config space bytes, feature negotiation, queue setup rules, doorbells), a device
// running in its own loop (the guest waits on call doorbells), NEEDS_RESET on a broken ring for
// that device only, and reset destroying every object.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessFlag, RdmaFeature, SendFlag, SendOpcode, VIRTIO_F_RING_RESET, featureBit } from '../../src/device/abi.js';
import { CONFIG_BYTES } from '../../src/device/config.js';
import { RdmaDevice } from '../../src/device/device.js';
import { DeviceError } from '../../src/device/errors.js';
import { QueueMap } from '../../src/device/queue-map.js';
import { GuestError } from '../../src/guest/rdma/errors.js';
import { RdmaGuest } from '../../src/guest/rdma/device.js';
import { Arena } from '../../src/memory/arena.js';
import { DeviceMemory } from '../../src/memory/device-memory.js';
import { gpa } from '../../src/memory/gpa.js';
import { QpState } from '../../src/nic/qp-state.js';
import { DeviceStatus } from '../../src/virtio/status.js';
import { DATA_AREA, DRIVER_AREA, RAM_BYTES, VM_IP, basicQp, rig, toRts } from './harness.js';
import { RecordingVerbs } from './recording-verbs.js';

describe('transport', () => {
  it('config space is §4 byte for byte, little-endian, 144 bytes', () => {
    const r = rig();
    const c = r.device.transport.readConfig(0, CONFIG_BYTES);
    const v = new DataView(c.buffer);
    const u32 = (off: number) => v.getUint32(off, true);
    assert.deepEqual([u32(0), u32(4), u32(8), u32(12), u32(16), u32(20)], [8, 8, 4, 32, 16, 16]);
    assert.deepEqual([u32(24), u32(28), u32(32), u32(36), u32(52), u32(56), u32(68)], [4096, 1024, 4096, 16, 256, 2 ** 30, 262144]);
    assert.equal(v.getBigUint64(72, true), 2n ** 40n);
    assert.equal(v.getBigUint64(80, true), 0x201000n);
    assert.deepEqual([u32(104), u32(108), u32(112)], [0, 42, 1]);
    assert.deepEqual([v.getUint16(116, true), v.getUint16(118, true), v.getUint16(120, true)], [1, 16, 1]);
    assert.deepEqual([c[122], c[123], c[124], c[125], c[126], c[127]], [15, 1, 5, 5, 0, 0]);
    assert.deepEqual([...c.subarray(128)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 1, 5]);
    assert.deepEqual(r.device.transport.readConfig(118, 2), Uint8Array.of(16, 0));
    assert.throws(() => r.device.transport.readConfig(140, 8), DeviceError);
    assert.equal(r.device.transport.deviceId, 42);
  });

  it('numbers the queues as §5.1 says', () => {
    const m = new QueueMap(8, 8, 4, true);
    assert.equal(m.numQueues, 1 + 8 + 16 + 4 + 1);
    assert.deepEqual(m.role(0), { kind: 'control' });
    assert.deepEqual(m.role(8), { kind: 'cq', index: 7 });
    assert.deepEqual(m.role(9), { kind: 'sq', index: 0 });
    assert.deepEqual(m.role(12), { kind: 'rq', index: 1 });
    assert.deepEqual(m.role(25), { kind: 'srq', index: 0 });
    assert.deepEqual(m.role(29), { kind: 'event' });
    assert.equal(m.role(30), null);
    assert.equal(new QueueMap(2, 2, 0, false).event, -1);
  });

  it('negotiates features and enforces queue setup rules', () => {
    const dm = DeviceMemory.create({ ramBytes: RAM_BYTES, arenaBytes: 1024 * 1024 });
    dm.addRegion(0, RAM_BYTES);
    const verbs = new RecordingVerbs();
    const dev = new RdmaDevice({ verbs, dm, vmIp: VM_IP, withhold: [RdmaFeature.ATOMIC], config: { maxCq: 2, maxQp: 2, maxSrq: 1 } });
    const t = dev.transport;
    assert.equal(t.deviceFeatures & featureBit(RdmaFeature.ATOMIC), 0n, 'a withheld feature is not offered');
    assert.notEqual(t.deviceFeatures & featureBit(VIRTIO_F_RING_RESET), 0n);
    t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    assert.throws(() => t.configureQueue(0, { size: 8, descGpa: 0x1000, driverGpa: 0x2000, deviceGpa: 0x3000 }), /after FEATURES_OK/);
    t.setDriverFeatures(featureBit(32) | featureBit(RdmaFeature.ATOMIC));
    assert.equal(t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK) & DeviceStatus.FEATURES_OK, 0, 'FEATURES_OK refused');
    t.writeStatus(0);
    t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    t.setDriverFeatures(featureBit(32));
    t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
    assert.throws(() => t.configureQueue(0, { size: 512, descGpa: 0x1000, driverGpa: 0x2000, deviceGpa: 0x3000 }), /size/);
    assert.throws(() => t.kick(99), DeviceError);
    t.configureQueue(0, { size: 8, descGpa: 0x1000, driverGpa: 0x2000, deviceGpa: 0x3000 });
    t.enableQueue(0);
    assert.ok(t.queueEnabled(0));
    assert.throws(() => t.configureQueue(0, { size: 8, descGpa: 0x1000, driverGpa: 0x2000, deviceGpa: 0x3000 }), /reset it first/);
    t.writeStatus(t.status.status | DeviceStatus.DRIVER_OK);
    assert.throws(() => t.configureQueue(1, { size: 8, descGpa: 0x4000, driverGpa: 0x5000, deviceGpa: 0x6000 }), /RING_RESET/);
    assert.throws(() => t.resetQueue(0), /RING_RESET/);
    // A ring outside guest RAM is a ring fault: NEEDS_RESET, the queue stays disabled.
    t.writeStatus(0);
    t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    t.setDriverFeatures(featureBit(32));
    t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
    const calls = t.configChange.value();
    t.configureQueue(0, { size: 8, descGpa: RAM_BYTES, driverGpa: 0x2000, deviceGpa: 0x3000 });
    t.enableQueue(0);
    assert.ok(!t.queueEnabled(0));
    assert.ok(t.status.needsReset);
    assert.equal(t.configChange.value(), calls + 1, 'configuration change notification');
  });

  it('kicks set pending bits the device takes once', () => {
    const r = rig();
    const t = r.device.transport;
    t.setPending(3);
    t.setPending(40 % t.numQueues);
    t.setPending(3);
    assert.deepEqual(t.takePending(), [3, 40 % t.numQueues].sort((a, b) => a - b));
    assert.deepEqual(t.takePending(), []);
  });
});

describe('a device in its own loop', () => {
  it('answers commands while the guest sleeps on the call doorbell', async () => {
    const r = rig({ device: { inline: false } });
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const seen = r.device.transport.wake.value();
        while (r.device.process());
        // A timer beside the wait keeps the event loop alive (waitAsync alone does not).
        await Promise.race([r.device.transport.wake.waitAsync(seen, 20), new Promise((resolve) => setTimeout(resolve, 20))]);
      }
    })();
    try {
      const { cq, qp } = await basicQp(r);
      await toRts(qp);
      qp.postSend([{ wrId: 5n, opcode: SendOpcode.Send, flags: SendFlag.SIGNALED }]);
      await new Promise((resolve) => setTimeout(resolve, 30));
      r.verbs.completeSend(qp.qpn);
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.deepEqual(cq.poll().map((c) => c.wrId), [5n]);
    } finally {
      stop = true;
      await loop;
    }
  });
});

describe('NEEDS_RESET and reset', () => {
  it('a broken control ring sets NEEDS_RESET on that device only; the other keeps working', async () => {
    const a = rig();
    const b = rig();
    const pdA = await a.guest.createPd();
    // The driver makes its available index jump past the queue size (§13.2).
    a.dm.guest.writeU16(gpa(a.guest.controlRing.config.driverGpa + 2), 1000);
    a.device.transport.kick(0);
    assert.ok(a.device.needsReset);
    assert.match(a.device.transport.status.resetReason ?? '', /AVAIL_JUMP|avail/i);
    await assert.rejects(a.guest.createPd(), GuestError);
    assert.equal(a.verbs.pds.size, 1, 'nothing more executed');
    // Device b is unaffected.
    const pdB = await b.guest.createPd();
    assert.ok(pdB >= 1 && !b.device.needsReset);
    void pdA;
  });

  it('a broken send ring sets NEEDS_RESET and stops the QPs (suspended, dropping)', async () => {
    const r = rig();
    const { qp } = await basicQp(r);
    await toRts(qp);
    const ring = qp.sq.ring.config;
    r.dm.guest.writeU16(gpa(ring.driverGpa + 2), 0x8000);
    r.device.transport.kick(qp.sq.vq);
    assert.ok(r.device.needsReset);
    assert.equal(r.verbs.stateOf(qp.qpn), QpState.Suspended);
    // Completions arriving now are drained from the provider and written nowhere.
    const before = r.dm.guest.slice(gpa(DRIVER_AREA), 64).slice();
    r.device.process();
    assert.deepEqual(r.dm.guest.slice(gpa(DRIVER_AREA), 64), before);
  });

  it('reset destroys every object and the device opens again from scratch', async () => {
    const r = rig();
    const { pd } = await basicQp(r);
    await r.guest.getDmaMr(pd, AccessFlag.LOCAL_WRITE);
    await r.guest.regPhysMr(pd, AccessFlag.LOCAL_WRITE, { iova: 0, length: 4096, pageShift: 12, pages: [DATA_AREA] });
    await r.guest.createSrq(pd, 4, 1);
    await r.guest.addGid(1, '127.0.1.6');
    r.guest.reset();
    assert.equal(r.verbs.census(), 'pd=0 mr=0 cq=0 qp=0[] srq=0 ah=0 gid=');
    assert.equal(r.device.core.gids[0], VM_IP);
    assert.equal(r.device.core.gids[1], null);
    assert.ok(!r.device.transport.queueEnabled(0));
    const alloc = new Arena(DATA_AREA - 0x100000, 0x100000);
    const again = RdmaGuest.open(r.device.transport, r.dm.guest, alloc);
    assert.equal(await again.createPd(), 1, 'handles start over');
    const cq = await again.createCq(4);
    assert.equal(cq.cqn, 0);
  });
});
