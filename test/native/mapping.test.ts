import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { DeviceMemory, RegionTable, gpa } from '../../src/memory/index.js';
import type { NativeAddon } from '../../src/native/addon.js';
import { isSystemError } from '../../src/native/errors.js';
import { instantiateKernels } from '../../src/wasm/loader.js';
import { ST_OUT_OF_RANGE } from '../../src/wasm/status.js';
import { withNative } from './with-native.js';

const MiB = 1024 * 1024;
const KiB = 1024;

function memfd(native: NativeAddon, sizeBytes: number): number {
  const fd = native.memfdCreate('vrdma-test-ram');
  ftruncateSync(fd, sizeBytes);
  return fd;
}

function pattern(lenBytes: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: lenBytes }, (_, i) => (i * 7 + seed) & 0xff);
}

describe('native mapping of a file into Wasm memory', () => {
  it('shares pages both ways with a memfd, and unmapping leaves zeros', withNative((native) => {
    const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
    const window = new Uint8Array(dm.memory.buffer, dm.layout.ramBase, 1 * MiB);
    window.fill(0x5a);
    const fd = memfd(native, 256 * KiB);
    try {
      const fromFile = pattern(64 * KiB, 3);
      writeSync(fd, fromFile, 0, fromFile.length, 128 * KiB);
      // Map file [128 KiB, 192 KiB) at window offset 64 KiB.
      const target = window.subarray(64 * KiB);
      native.mapIntoMemory(target, fd, 128 * KiB, 64 * KiB);
      assert.deepEqual(window.subarray(64 * KiB, 128 * KiB), fromFile);
      assert.equal(window[64 * KiB - 1], 0x5a, 'pages before the mapping are untouched');
      assert.equal(window[128 * KiB], 0x5a, 'pages after the mapping are untouched');

      // A write through the memory lands in the file.
      const fromMemory = pattern(100, 99);
      window.set(fromMemory, 64 * KiB + 5000);
      const back = new Uint8Array(100);
      readSync(fd, back, 0, 100, 128 * KiB + 5000);
      assert.deepEqual(back, fromMemory);

      // Guest memory reads through the region table see the file too.
      dm.guest.regions.insert({ gpa: gpa(0x4000_0000), size: 1 * MiB, hostOffset: dm.layout.ramBase });
      const readBack = new Uint8Array(16);
      dm.guest.read(gpa(0x4000_0000 + 64 * KiB + 16), readBack);
      assert.deepEqual(readBack, fromFile.subarray(16, 32));

      native.unmapFromMemory(target, 64 * KiB);
      assert.ok(window.subarray(64 * KiB, 128 * KiB).every((b) => b === 0), 'unmapped range reads as zeros');
      window[64 * KiB] = 1; // and is still writable
      readSync(fd, back, 0, 1, 128 * KiB);
      assert.equal(back[0], fromFile[0], 'writes after unmap no longer reach the file');
      assert.equal(window[128 * KiB], 0x5a);
    } finally {
      native.closeFd(fd);
    }
  }));

  it('lets Wasm kernels read what was written through the fd', withNative((native) => {
    // Map a page holding a region table over the device's region table: the Wasm lookup kernel
    // then translates through regions that were only ever written to the file.
    const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
    const page = native.pageSize();
    const wasm = instantiateKernels(dm.memory).regionTranslate as (t: number, g: number, l: number) => number;
    const tableOff = dm.layout.regionTableOff;
    assert.equal(tableOff % page, 0);
    const fd = memfd(native, page);
    try {
      const staging = new ArrayBuffer(page);
      const table = new RegionTable(staging, 0);
      table.init();
      table.insert({ gpa: gpa(0x10_0000), size: 2 * MiB, hostOffset: dm.layout.ramBase });
      writeSync(fd, new Uint8Array(staging), 0, page, 0);
      assert.equal(wasm(tableOff, 0x10_0000 + 8, 8), ST_OUT_OF_RANGE);
      native.mapIntoMemory(new Uint8Array(dm.memory.buffer, tableOff, page), fd, 0, page);
      assert.equal(wasm(tableOff, 0x10_0000 + 8, 8), dm.layout.ramBase + 8);
      native.unmapFromMemory(new Uint8Array(dm.memory.buffer, tableOff, page), page);
      assert.equal(wasm(tableOff, 0x10_0000 + 8, 8), ST_OUT_OF_RANGE);
    } finally {
      native.closeFd(fd);
    }
  }));

  it('shows the mapped file to another thread sharing the memory', withNative(async (native) => {
    const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
    const page = native.pageSize();
    const fd = memfd(native, page);
    try {
      const fromFile = pattern(page, 42);
      writeSync(fd, fromFile, 0, page, 0);
      native.mapIntoMemory(new Uint8Array(dm.memory.buffer, dm.layout.ramBase, page), fd, 0, page);
      const worker = new Worker(
        'const { parentPort, workerData: w } = require("node:worker_threads");' +
          'parentPort.postMessage(Array.from(new Uint8Array(w.memory.buffer, w.off, 64)));',
        { eval: true, workerData: { memory: dm.memory, off: dm.layout.ramBase + 1000 } },
      );
      const seen = await new Promise<number[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      await worker.terminate();
      assert.deepEqual(seen, Array.from(fromFile.subarray(1000, 1064)));
    } finally {
      native.closeFd(fd);
    }
  }));

  it('refuses unaligned, oversized, non-shared and past-the-file mappings, leaving memory intact', withNative((native) => {
    const dm = DeviceMemory.create({ ramBytes: 4 * MiB, arenaBytes: 1 * MiB });
    const page = native.pageSize();
    const window = new Uint8Array(dm.memory.buffer, dm.layout.ramBase, 4 * page);
    window.set(pattern(window.length, 11));
    const fd = memfd(native, 2 * page);
    try {
      assert.throws(() => native.mapIntoMemory(window.subarray(1), fd, 0, page), RangeError);
      assert.throws(() => native.mapIntoMemory(window, fd, 0, page + 1), RangeError);
      assert.throws(() => native.mapIntoMemory(window, fd, 1, page), RangeError);
      assert.throws(() => native.mapIntoMemory(window, fd, 0, 0), RangeError);
      assert.throws(() => native.mapIntoMemory(window.subarray(0, page), fd, 0, 2 * page), RangeError);
      assert.throws(() => native.mapIntoMemory(window, fd, page, 2 * page), /past its end/);
      assert.throws(() => native.mapIntoMemory(new Uint8Array(4 * page), fd, 0, page), TypeError);
      assert.throws(() => native.unmapFromMemory(new Uint8Array(4 * page), page), TypeError);
      assert.throws(() => native.unmapFromMemory(window.subarray(8), page), RangeError);
      // A read-only fd cannot back a shared writable mapping: mmap fails before anything moves.
      const readOnly = openSync(`/proc/self/fd/${fd}`, 'r');
      try {
        assert.throws(() => native.mapIntoMemory(window, readOnly, 0, page), (e: unknown) => isSystemError(e, 'EACCES') && e.syscall === 'mmap');
      } finally {
        closeSync(readOnly);
      }
      assert.throws(() => native.mapIntoMemory(window, 1_000_000, 0, page), (e: unknown) => isSystemError(e, 'EBADF'));
      assert.deepEqual(window, pattern(window.length, 11), 'refused mappings changed nothing');
    } finally {
      native.closeFd(fd);
    }
  }));
});
