import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceStatus as S, VirtioStatus } from '../../src/virtio/status.js';

describe('virtio device status', () => {
  it('negotiates features: refuses FEATURES_OK for a feature not offered', () => {
    const st = new VirtioStatus((1n << 32n) | (1n << 29n));
    st.write(S.ACKNOWLEDGE | S.DRIVER);
    st.setDriverFeatures((1n << 32n) | (1n << 28n));
    assert.equal(st.write(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK) & S.FEATURES_OK, 0);
    st.setDriverFeatures((1n << 32n) | (1n << 29n));
    assert.equal(st.write(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK) & S.FEATURES_OK, S.FEATURES_OK);
    assert.throws(() => st.setDriverFeatures(0n));
    assert.ok(st.has(29) && !st.has(28));
  });

  it('keeps NEEDS_RESET until the driver resets the device', () => {
    const st = new VirtioStatus(1n << 32n);
    st.write(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK);
    assert.ok(st.driverOk);
    st.markNeedsReset('ring broken');
    st.markNeedsReset('second reason is not kept');
    assert.ok(st.needsReset && !st.driverOk);
    assert.equal(st.resetReason, 'ring broken');
    st.write(S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK);
    assert.ok(st.needsReset, 'the driver cannot clear NEEDS_RESET by writing the status');
    st.write(0);
    assert.equal(st.status, 0);
    assert.equal(st.resetReason, null);
  });
});
