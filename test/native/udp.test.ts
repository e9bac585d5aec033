import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { NativeAddon } from '../../src/native/addon.js';
import { isSystemError } from '../../src/native/errors.js';
import { withNative } from './with-native.js';

const HOST = 0x7f000002; // 127.0.0.2
const VM = 0x7f000105; // 127.0.1.5
const VM2 = 0x7f000106; // 127.0.1.6

function sockets(native: NativeAddon, body: (...fds: number[]) => void): void {
  const fds = ['127.0.0.2', '127.0.1.5', '127.0.1.6'].map((a) => native.udpBind(a, 0));
  try {
    body(...fds);
  } finally {
    fds.forEach((fd) => native.closeFd(fd));
  }
}

/** Receive until `want` datagrams arrived (loopback delivery is immediate; poll guards anyway). */
function recvAll(native: NativeAddon, fd: number, data: Uint8Array, desc: Uint32Array, want: number, slotBytes: number): number {
  const W = native.udp.DESC_WORDS;
  let got = 0;
  while (got < want) {
    if ((native.pollFd(fd, native.poll.POLLIN, 1000) & native.poll.POLLIN) === 0) break;
    const tail = desc.subarray(got * W);
    for (let i = 0; i < want - got; i++) {
      tail[i * W] = (got + i) * slotBytes;
      tail[i * W + 1] = slotBytes;
    }
    got += native.udpRecvMany(fd, data, tail, want - got);
  }
  return got;
}

describe('native batched UDP', () => {
  it('moves random batches of datagrams between loopback addresses, with their sources', withNative((native) => {
    sockets(native, (host, vm, vm2) => {
      const vmPort = native.udpLocalAddress(vm).port;
      const vm2Port = native.udpLocalAddress(vm2).port;
      const hostAddr = native.udpLocalAddress(host);
      assert.equal(hostAddr.ipv4, HOST);
      const W = native.udp.DESC_WORDS;
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 1500 }), fc.boolean()), { minLength: 1, maxLength: 64 }), (grams) => {
          const data = new Uint8Array(64 * 1500);
          const desc = new Uint32Array(64 * W);
          let off = 0;
          grams.forEach(([payload, second], i) => {
            data.set(payload, off);
            desc.set([off, payload.length, second ? VM2 : VM, second ? vm2Port : vmPort], i * W);
            off += payload.length;
          });
          let sent = 0;
          while (sent < grams.length) sent += native.udpSendMany(host, data, desc.subarray(sent * W), grams.length - sent);
          for (const [fd, second] of [[vm, false], [vm2, true]] as const) {
            const mine = grams.filter(([, s]) => s === second).map(([p]) => p);
            const rdata = new Uint8Array(64 * 2048);
            const rdesc = new Uint32Array(64 * W);
            assert.equal(recvAll(native, fd, rdata, rdesc, mine.length, 2048), mine.length);
            mine.forEach((payload, i) => {
              const [o, len, ipv4, portFlags] = rdesc.subarray(i * W, i * W + W);
              assert.equal(ipv4, HOST);
              assert.equal(portFlags, hostAddr.port, 'source port, no truncation flag');
              assert.deepEqual(rdata.subarray(o, o + len), payload);
            });
            assert.equal(native.udpRecvMany(fd, rdata, rdesc, 1), 0, 'nothing more is waiting');
          }
        }),
        { numRuns: 30 },
      );
    });
  }));

  it('flags a datagram longer than its slot as truncated', withNative((native) => {
    sockets(native, (host, vm) => {
      const payload = Uint8Array.from({ length: 100 }, (_, i) => i);
      const port = native.udpLocalAddress(vm).port;
      assert.equal(native.udpSendMany(host, payload, Uint32Array.of(0, 100, VM, port), 1), 1);
      const rdata = new Uint8Array(64);
      const rdesc = new Uint32Array(native.udp.DESC_WORDS);
      assert.equal(recvAll(native, vm, rdata, rdesc, 1, 40), 1);
      assert.equal(rdesc[1], 40);
      assert.equal(rdesc[3] & native.udp.TRUNCATED, native.udp.TRUNCATED);
      assert.deepEqual(rdata.subarray(0, 40), payload.subarray(0, 40));
    });
  }));

  it('returns 0 when nothing is waiting, and refuses slots outside the buffer', withNative((native) => {
    sockets(native, (host, vm) => {
      const data = new Uint8Array(100);
      assert.equal(native.udpRecvMany(vm, data, Uint32Array.of(0, 100, 0, 0), 1), 0);
      assert.throws(() => native.udpSendMany(host, data, Uint32Array.of(90, 11, VM, 4791), 1), RangeError);
      assert.throws(() => native.udpRecvMany(vm, data, Uint32Array.of(0, 101, 0, 0), 1), RangeError);
      assert.throws(() => native.udpSendMany(host, data, Uint32Array.of(0, 1, VM, 4791), 2), RangeError);
      assert.throws(() => native.udpSendMany(host, data, Uint32Array.of(0, 1, VM, 70000), 1), RangeError);
      assert.throws(() => native.udpSendMany(host, data, new Uint32Array(4 * 1025), 1025), RangeError);
      assert.throws(() => native.udpSendMany(host, data, new Int32Array(4) as unknown as Uint32Array, 1), TypeError);
      assert.equal(native.udpSendMany(host, data, new Uint32Array(0), 0), 0);
    });
  }));

  it('refuses bad addresses and a port already bound', withNative((native) => {
    assert.throws(() => native.udpBind('127.0.0.300', 0), RangeError);
    assert.throws(() => native.udpBind('::1', 0), RangeError);
    const fd = native.udpBind('127.0.0.2', 0);
    try {
      const { port } = native.udpLocalAddress(fd);
      assert.throws(() => native.udpBind('127.0.0.2', port), (e: unknown) => isSystemError(e, 'EADDRINUSE') && e.syscall === 'bind');
    } finally {
      native.closeFd(fd);
    }
  }));

  it('binds with IP_PMTUDISC_DO and sets and reads the options vrdma needs', withNative((native) => {
    const fd = native.udpBind('127.0.0.2', 0);
    try {
      assert.equal(native.socketGetOption(fd, 'IP_MTU_DISCOVER'), native.udp.PMTUDISC.DO);
      native.socketSetOption(fd, 'IP_MTU_DISCOVER', native.udp.PMTUDISC.WANT);
      assert.equal(native.socketGetOption(fd, 'IP_MTU_DISCOVER'), native.udp.PMTUDISC.WANT);
      native.socketSetOption(fd, 'SO_RCVBUF', 256 << 10);
      native.socketSetOption(fd, 'SO_SNDBUF', 128 << 10);
      // Linux reports twice what was set (bookkeeping), below net.core.rmem_max/wmem_max.
      assert.equal(native.socketGetOption(fd, 'SO_RCVBUF'), 512 << 10);
      assert.equal(native.socketGetOption(fd, 'SO_SNDBUF'), 256 << 10);
      assert.throws(() => native.socketSetOption(fd, 'SO_REUSEADDR' as 'SO_RCVBUF', 1), /unsupported socket option/);
      assert.throws(() => native.socketSetOption(fd, 'SO_RCVBUF', -1), RangeError);
      assert.throws(() => native.socketSetOption(fd, 'IP_MTU_DISCOVER', 99), (e: unknown) => isSystemError(e, 'EINVAL') && e.syscall === 'setsockopt');
    } finally {
      native.closeFd(fd);
    }
    assert.throws(() => native.socketGetOption(fd, 'SO_RCVBUF'), (e: unknown) => isSystemError(e, 'EBADF') && e.syscall === 'getsockopt');
  }));
});
