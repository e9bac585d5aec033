// The one way a native test may depend on the optional addon: when it is not available the test
// fails under VRDMA_REQUIRE_NATIVE=1, and otherwise checks the loader gave a clear reason. No test
// is skipped either way.
import assert from 'node:assert/strict';
import { type NativeAddon, nativeStatus } from '../../src/native/addon.js';

export function withNative(body: (addon: NativeAddon) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const status = nativeStatus();
    if (!status.available) {
      assert.notEqual(process.env.VRDMA_REQUIRE_NATIVE, '1', `VRDMA_REQUIRE_NATIVE=1 but the native addon is unavailable: ${status.reason}`);
      assert.match(status.reason, /^native addon .{10,}/);
      return;
    }
    await body(status.addon);
  };
}
