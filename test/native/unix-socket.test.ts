import assert from 'node:assert/strict';
import { ftruncateSync, mkdtempSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { NativeAddon } from '../../src/native/addon.js';
import { isSystemError } from '../../src/native/errors.js';
import { withNative } from './with-native.js';

function pair(native: NativeAddon, body: (a: number, b: number) => void): void {
  const [a, b] = native.unixSocketPair();
  try {
    body(a, b);
  } finally {
    native.closeFd(a);
    native.closeFd(b);
  }
}

describe('native Unix sockets with fd passing', () => {
  it('passes an eventfd and a memfd that refer to the same objects on the other side', withNative((native) => {
    pair(native, (a, b) => {
      const efd = native.eventfdCreate();
      const mfd = native.memfdCreate('vrdma-test-region');
      ftruncateSync(mfd, 4096);
      const message = new TextEncoder().encode('SET_MEM_TABLE');
      assert.equal(native.unixSendMsg(a, message, 0, message.length, [efd, mfd]), message.length);
      assert.equal(native.pollFd(b, native.poll.POLLIN, 1000) & native.poll.POLLIN, native.poll.POLLIN);
      const buf = new Uint8Array(64);
      const got = native.unixRecvMsg(b, buf, 8, 56);
      assert.equal(got.bytes, message.length);
      assert.deepEqual(buf.subarray(8, 8 + got.bytes), message);
      assert.equal(got.controlTruncated, false);
      assert.equal(got.fds.length, 2);
      const [efd2, mfd2] = got.fds;
      try {
        for (const fd of got.fds) {
          assert.ok(fd !== efd && fd !== mfd);
          assert.equal(native.fdCloexec(fd), true, 'received fds are close-on-exec');
        }
        native.eventfdWrite(efd2, 5); // a kick through the received fd reaches the original
        assert.equal(native.eventfdRead(efd), 5);
        writeSync(mfd, Uint8Array.of(1, 2, 3), 0, 3, 100); // and the memfd is the same file
        const back = new Uint8Array(3);
        readSync(mfd2, back, 0, 3, 100);
        assert.deepEqual(back, Uint8Array.of(1, 2, 3));
      } finally {
        for (const fd of [efd, mfd, efd2, mfd2]) native.closeFd(fd);
      }
    });
  }));

  it('carries random messages and fd counts intact', withNative((native) => {
    pair(native, (a, b) => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 2048 }), fc.integer({ min: 0, max: 6 }), (payload, fdCount) => {
          const sent = Array.from({ length: fdCount }, () => native.eventfdCreate());
          try {
            assert.equal(native.unixSendMsg(a, payload, 0, payload.length, sent), payload.length);
            const buf = new Uint8Array(4096);
            const got = native.unixRecvMsg(b, buf, 0, buf.length);
            assert.equal(got.bytes, payload.length);
            assert.deepEqual(buf.subarray(0, got.bytes), payload);
            assert.equal(got.fds.length, fdCount);
            got.fds.forEach((fd, i) => {
              native.eventfdWrite(fd, i + 1);
              assert.equal(native.eventfdRead(sent[i]), i + 1, 'fds arrive in the order sent');
              native.closeFd(fd);
            });
          } finally {
            sent.forEach((fd) => native.closeFd(fd));
          }
        }),
        { numRuns: 40 },
      );
    });
  }));

  it('reports fds beyond maxFds as a truncated control message and hands over the rest', withNative((native) => {
    pair(native, (a, b) => {
      const sent = [native.eventfdCreate(), native.eventfdCreate(), native.eventfdCreate()];
      try {
        native.unixSendMsg(a, Uint8Array.of(7), 0, 1, sent);
        const got = native.unixRecvMsg(b, new Uint8Array(8), 0, 8, 1);
        assert.equal(got.bytes, 1);
        assert.equal(got.controlTruncated, true);
        assert.equal(got.fds.length, 1);
        got.fds.forEach((fd) => native.closeFd(fd));
        // No fds accepted at all: the message still arrives, the fds do not.
        native.unixSendMsg(a, Uint8Array.of(8), 0, 1, sent);
        const none = native.unixRecvMsg(b, new Uint8Array(8), 0, 8, 0);
        assert.deepEqual([none.bytes, none.fds.length, none.controlTruncated], [1, 0, true]);
      } finally {
        sent.forEach((fd) => native.closeFd(fd));
      }
    });
  }));

  it('returns -1 when nothing is ready and 0 at end of stream', withNative((native) => {
    const [a, b] = native.unixSocketPair();
    try {
      assert.equal(native.unixRecvMsg(b, new Uint8Array(4), 0, 4).bytes, -1);
      assert.equal(native.pollFd(b, native.poll.POLLIN, 0), 0);
      native.closeFd(a);
      const eof = native.unixRecvMsg(b, new Uint8Array(4), 0, 4);
      assert.deepEqual([eof.bytes, eof.fds.length], [0, 0]);
      assert.throws(() => native.unixSendMsg(b, Uint8Array.of(1), 0, 1), (e: unknown) => isSystemError(e, 'EPIPE'));
    } finally {
      native.closeFd(b);
    }
  }));

  it('fills a socket until sendmsg reports it would block', withNative((native) => {
    pair(native, (a, b) => {
      const chunk = new Uint8Array(65536);
      let sent = 0;
      let n = 0;
      while ((n = native.unixSendMsg(a, chunk, 0, chunk.length)) > 0) sent += n;
      assert.equal(n, -1);
      let received = 0;
      const buf = new Uint8Array(65536);
      while ((n = native.unixRecvMsg(b, buf, 0, buf.length).bytes) > 0) received += n;
      assert.equal(received, sent);
    });
  }));

  it('listens, connects and accepts on a path', withNative((native) => {
    const dir = mkdtempSync(join(tmpdir(), 'vrdma-sock-'));
    const path = join(dir, 'vhost.sock');
    const listener = native.unixListen(path);
    try {
      assert.equal(native.unixAccept(listener), -1);
      const client = native.unixConnect(path);
      assert.equal(native.pollFd(listener, native.poll.POLLIN, 1000) & native.poll.POLLIN, native.poll.POLLIN);
      const server = native.unixAccept(listener);
      assert.ok(server >= 0);
      assert.equal(native.fdCloexec(server), true);
      const efd = native.eventfdCreate();
      native.unixSendMsg(client, Uint8Array.of(1, 2), 0, 2, [efd]);
      const got = native.unixRecvMsg(server, new Uint8Array(8), 0, 8);
      assert.equal(got.bytes, 2);
      assert.equal(got.fds.length, 1);
      for (const fd of [...got.fds, efd, server, client]) native.closeFd(fd);
      assert.throws(() => native.unixListen(path), (e: unknown) => isSystemError(e, 'EADDRINUSE'));
    } finally {
      native.closeFd(listener);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => native.unixConnect(path), (e: unknown) => isSystemError(e, 'ENOENT'));
  }));

  it('refuses bad arguments', withNative((native) => {
    pair(native, (a) => {
      assert.throws(() => native.unixSendMsg(a, new Uint8Array(4), 2, 3), RangeError);
      assert.throws(() => native.unixSendMsg(a, new Uint8Array(4), 0, 0, [0]), /at least one byte/);
      assert.throws(() => native.unixSendMsg(a, new Uint8Array(4), 0, 1, [1_000_000]), (e: unknown) => isSystemError(e, 'EBADF'));
      assert.throws(() => native.unixRecvMsg(a, new Uint8Array(4), 0, 4, 254), RangeError);
      assert.throws(() => native.unixListen('x'.repeat(200)), RangeError);
    });
  }));
});
