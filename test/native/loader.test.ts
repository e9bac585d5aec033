import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NATIVE_ABI_VERSION, defaultAddonPath, loadNativeFrom, nativeStatus, requireNative } from '../../src/native/addon.js';
import { NativeError, NativeErrorCode } from '../../src/native/errors.js';
import { withNative } from './with-native.js';

describe('native addon loader', () => {
  it('reports a missing build as unavailable with the path and how to build, without throwing', () => {
    const path = join(tmpdir(), 'vrdma-no-such-dir', 'vrdma_native.node');
    const status = loadNativeFrom(path);
    assert.equal(status.available, false);
    assert.ok(!status.available && status.reason.includes(path) && status.reason.includes('npm run build:native'));
  });

  it('reports a file that is not a loadable addon as unavailable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vrdma-native-'));
    try {
      const path = join(dir, 'vrdma_native.node');
      writeFileSync(path, 'not an ELF object');
      const status = loadNativeFrom(path);
      assert.ok(!status.available && /failed to load/.test(status.reason), JSON.stringify(status));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads the default build, or says why not', withNative((addon) => {
    assert.equal(addon.abiVersion, NATIVE_ABI_VERSION);
    assert.equal(nativeStatus().path, defaultAddonPath());
    assert.equal(requireNative(), addon);
  }));

  it('requireNative throws NativeError(Unavailable) exactly when the addon is unavailable', () => {
    const status = nativeStatus();
    if (status.available) {
      assert.equal(requireNative(), status.addon);
    } else {
      assert.throws(requireNative, (e: unknown) => e instanceof NativeError && e.code === NativeErrorCode.Unavailable && e.message.includes(status.reason));
    }
  });
});
