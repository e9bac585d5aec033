import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isSystemError } from '../../src/native/errors.js';
import { withNative } from './with-native.js';

describe('native eventfd', () => {
  it('counts writes, and a read returns and clears the counter', withNative((native) => {
    const fd = native.eventfdCreate();
    try {
      assert.equal(native.eventfdRead(fd), 0);
      assert.equal(native.pollFd(fd, native.poll.POLLIN, 0), 0);
      assert.equal(native.eventfdWrite(fd), true);
      assert.equal(native.eventfdWrite(fd), true);
      assert.equal(native.eventfdWrite(fd, 40), true);
      assert.equal(native.pollFd(fd, native.poll.POLLIN, 0) & native.poll.POLLIN, native.poll.POLLIN);
      assert.equal(native.eventfdRead(fd), 42);
      assert.equal(native.eventfdRead(fd), 0);
    } finally {
      native.closeFd(fd);
    }
  }));

  it('sums any sequence of writes', withNative((native) => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 2 ** 40 }), { maxLength: 20 }), fc.nat({ max: 1000 }), (values, initial) => {
        const fd = native.eventfdCreate(initial);
        try {
          for (const v of values) assert.equal(native.eventfdWrite(fd, v), true);
          assert.equal(native.eventfdRead(fd), values.reduce((a, b) => a + b, initial));
        } finally {
          native.closeFd(fd);
        }
      }),
      { numRuns: 50 },
    );
  }));

  it('is close-on-exec, and closing it makes it unusable', withNative((native) => {
    const fd = native.eventfdCreate();
    assert.equal(native.fdCloexec(fd), true);
    native.closeFd(fd);
    assert.throws(() => native.fdCloexec(fd), (e: unknown) => isSystemError(e, 'EBADF') && e.syscall === 'fcntl');
    assert.throws(() => native.eventfdRead(fd), (e: unknown) => isSystemError(e, 'EBADF'));
    assert.throws(() => native.closeFd(fd), (e: unknown) => isSystemError(e, 'EBADF'));
  }));

  it('refuses writes that would overflow the counter instead of blocking', withNative((native) => {
    // The counter's ceiling is 2^64 - 2: start near it with writes of 2^53 - 1.
    const fd = native.eventfdCreate();
    try {
      let accepted = 0;
      while (native.eventfdWrite(fd, Number.MAX_SAFE_INTEGER)) accepted++;
      assert.equal(accepted, 2048); // floor((2^64 - 2) / (2^53 - 1))
      assert.ok(native.eventfdRead(fd) > 2 ** 63);
      assert.equal(native.eventfdWrite(fd), true);
    } finally {
      native.closeFd(fd);
    }
  }));

  it('refuses bad arguments', withNative((native) => {
    assert.throws(() => native.eventfdWrite(-1), RangeError);
    assert.throws(() => native.eventfdWrite(0, 0), RangeError);
    assert.throws(() => native.eventfdCreate(-1), RangeError);
  }));
});
