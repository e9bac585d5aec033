// Hostile peers over real TCP on loopback. A destination refuses a bad source with a clear code,
// tells it why (ABORT) and builds nothing. A source facing a bad destination rejects with a clear
// code and keeps its VM: before the switchover it never touched it; after, it rebinds the
// address, resumes every QP and the guest, in that order.
import assert from 'node:assert/strict';
import { type Socket, connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { listenForMigration } from '../../src/migration/destination.js';
import { MigrationError, MigrationErrorCode } from '../../src/migration/errors.js';
import { FRAME_HEADER_BYTES, type Frame, FrameReader, MessageType, encodeFrame } from '../../src/migration/frame.js';
import { PROTOCOL_VERSION, PageBatch, decodeAbort, encodeStatePreview, encodeHello, encodeHelloAck, encodeRoundEnd } from '../../src/migration/messages.js';
import { migrateOut } from '../../src/migration/source.js';
import { FakeDestinationVm, FakeSourceVm } from './fake-vm.js';

const MiB = 1024 * 1024;
const HELLO = { ip: '127.0.24.60', ramBytes: 4 * MiB, arenaBytes: MiB, blackoutWatchMs: 100, regions: [{ gpa: 0, size: 2 * MiB }] };

function code(c: MigrationErrorCode) {
  return (e: unknown) => e instanceof MigrationError && e.code === c;
}

function rawHeader(bodyBytes: number, type: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(h.buffer).setUint32(0, bodyBytes, true);
  new DataView(h.buffer).setUint16(4, type, true);
  return h;
}

/** Connect to a fresh listener, send `chunks`, optionally end; resolve with what came back. */
async function hostileSource(chunks: Uint8Array[], end: boolean, expect: MigrationErrorCode) {
  let restored = false;
  const listener = listenForMigration({ host: '127.0.24.2', port: 0 }, {
    restoreVm: async (parts) => {
      restored = true;
      return new FakeDestinationVm(parts);
    },
    maxRamBytes: 64 * MiB,
  });
  const { port } = await listener.ready;
  const socket = connect({ host: '127.0.24.2', port });
  const back: Frame[] = [];
  const reader = new FrameReader();
  socket.on('data', (b: Buffer) => back.push(...reader.push(new Uint8Array(b))));
  const closed = new Promise((resolve) => socket.on('close', resolve));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  for (const c of chunks) socket.write(c);
  if (end) socket.end();
  await assert.rejects(listener.accepted, code(expect));
  await closed;
  assert.equal(restored, false, 'nothing was built');
  return back;
}

describe('a destination facing a hostile source', () => {
  it('an undefined frame type: BAD_TYPE, and the source is told', async () => {
    const back = await hostileSource([rawHeader(0, 99)], false, MigrationErrorCode.BadType);
    assert.equal(back.at(-1)?.type, MessageType.Abort);
    assert.equal(decodeAbort(back.at(-1)!.body).code, MigrationErrorCode.BadType);
  });

  it('a length over the limit: OVERSIZED before any body arrives', async () => {
    const back = await hostileSource([rawHeader(0xfffffff0, MessageType.Hello)], false, MigrationErrorCode.Oversized);
    assert.equal(decodeAbort(back.at(-1)!.body).code, MigrationErrorCode.Oversized);
  });

  it('a stream that ends mid-frame: SHORT_FRAME', async () => {
    const hello = encodeHello(HELLO);
    await hostileSource([hello.subarray(0, hello.length - 3)], true, MigrationErrorCode.ShortFrame);
  });

  it('a message out of order: ORDER', async () => {
    const back = await hostileSource([encodeRoundEnd({ round: 0, pages: 0, final: true })], false, MigrationErrorCode.Order);
    assert.equal(decodeAbort(back.at(-1)!.body).code, MigrationErrorCode.Order);
  });

  it('another protocol version, or not the protocol at all: VERSION', async () => {
    await hostileSource([encodeHello(HELLO, 7)], false, MigrationErrorCode.Version);
    await hostileSource([encodeFrame(MessageType.Hello, new TextEncoder().encode('hello, world'))], false, MigrationErrorCode.Version);
  });

  it('a second STATE_PREVIEW, one mid-round, or one whose lengths disagree: refused', async () => {
    const preview = encodeStatePreview({ deviceState: new Uint8Array(40), guestState: new Uint8Array(8) });
    await hostileSource([encodeHello(HELLO), preview, preview], false, MigrationErrorCode.Order);
    const one = new PageBatch(0, 1);
    one.add(3, new Uint8Array(4096).fill(1));
    await hostileSource([encodeHello(HELLO), one.finish(), preview], false, MigrationErrorCode.Order);
    const lying = preview.slice();
    new DataView(lying.buffer).setUint32(FRAME_HEADER_BYTES, 41, true);
    await hostileSource([encodeHello(HELLO), lying], false, MigrationErrorCode.Malformed);
  });

  it('more RAM than this host allows: REFUSED', async () => {
    const back = await hostileSource([encodeHello({ ...HELLO, ramBytes: 1024 * MiB })], false, MigrationErrorCode.Refused);
    assert.equal(decodeAbort(back.at(-1)!.body).code, MigrationErrorCode.Refused);
  });

  it('a page outside the guest, a round that miscounts, a round out of sequence: refused', async () => {
    const outside = new PageBatch(0, 1);
    outside.add(4096, new Uint8Array(4096).fill(1));
    await hostileSource([encodeHello(HELLO), outside.finish()], false, MigrationErrorCode.Malformed);
    const one = new PageBatch(0, 1);
    one.add(3, new Uint8Array(4096).fill(1));
    await hostileSource([encodeHello(HELLO), one.finish(), encodeRoundEnd({ round: 0, pages: 2, final: false })], false, MigrationErrorCode.Malformed);
    await hostileSource([encodeHello(HELLO), encodeRoundEnd({ round: 1, pages: 0, final: false })], false, MigrationErrorCode.Order);
  });

  it('takes one migration: a second connection is closed', async () => {
    const listener = listenForMigration({ host: '127.0.24.2', port: 0 }, { restoreVm: async (parts) => new FakeDestinationVm(parts) });
    const { port } = await listener.ready;
    const first = connect({ host: '127.0.24.2', port });
    first.on('error', () => {});
    await new Promise((resolve) => first.once('connect', resolve));
    const second = connect({ host: '127.0.24.2', port });
    second.on('error', () => {});
    await new Promise((resolve) => second.once('close', resolve));
    first.write(rawHeader(0, 0));
    await assert.rejects(listener.accepted, code(MigrationErrorCode.BadType));
  });
});

/**
 * A scripted destination: answers HELLO with `ack` (default a good HELLO_ACK) and a STATE_PREVIEW
 * with PREVIEW_ACK (unless `ackPreview` is false), then calls `onFrame` for each frame it reads;
 * returns its port.
 */
async function scriptedDestination(host: string, onFrame: (f: Frame, s: Socket) => void, ack: Uint8Array = encodeHelloAck(), ackPreview = true): Promise<number> {
  const server = createServer((s) => {
    server.close();
    s.on('error', () => {});
    const reader = new FrameReader();
    s.on('data', (b: Buffer) => {
      for (const f of reader.push(new Uint8Array(b))) {
        if (s.destroyed) return;
        if (f.type === MessageType.Hello) s.write(ack);
        else if (f.type === MessageType.StatePreview && ackPreview) s.write(encodeFrame(MessageType.PreviewAck));
        else onFrame(f, s);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as { port: number }).port;
}

function source(qpns: number[] = [5, 6]) {
  const vm = new FakeSourceVm('127.0.24.61', [{ gpa: 0, size: 2 * MiB }], 4 * MiB, qpns);
  vm.dm.guest.bytes.fill(7, vm.dm.guest.translate(0 as never, 4096), vm.dm.guest.translate(0 as never, 4096) + 4096);
  let paused = 0;
  let resumed = 0;
  const options = {
    pauseGuest: async () => {
      paused++;
      vm.events.push('pause');
      return new Uint8Array(3);
    },
    resumeGuest: () => {
      resumed++;
      vm.events.push('resume guest');
    },
    timeoutMs: 2000,
    blackoutWatchMs: 50,
  };
  return { vm, options, counts: () => ({ paused, resumed }) };
}

function untouched(vm: FakeSourceVm, counts: { paused: number; resumed: number }) {
  assert.deepEqual(vm.events, []);
  assert.deepEqual(counts, { paused: 0, resumed: 0 });
  assert.ok(vm.addressHeld && !vm.closed && !vm.dirtyLog.enabled && !vm.cpuLog.enabled);
}

function tookBack(vm: FakeSourceVm, counts: { paused: number; resumed: number }, released: boolean) {
  const rollback = released ? ['rebind', 'resume 5', 'resume 6', 'resume guest'] : ['resume 5', 'resume 6', 'resume guest'];
  assert.deepEqual(vm.events, ['pause', 'suspend 5', 'suspend 6', ...(released ? ['release'] : []), ...rollback]);
  assert.deepEqual(counts, { paused: 1, resumed: 1 });
  assert.ok(vm.addressHeld && !vm.closed && !vm.dirtyLog.enabled && !vm.cpuLog.enabled);
  assert.ok([...vm.qpStates.values()].every((s) => s === 3), 'every QP is back in RTS');
}

describe('a source facing a hostile destination', () => {
  const HOST = '127.0.24.3';

  it('a version it does not speak: VERSION, the VM untouched', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, () => {}, encodeHelloAck(PROTOCOL_VERSION + 1));
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), code(MigrationErrorCode.Version));
    untouched(vm, counts());
  });

  it('nobody listening: CLOSED, the VM untouched', async () => {
    const { vm, options, counts } = source();
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), code(MigrationErrorCode.Closed));
    untouched(vm, counts());
  });

  it('an ABORT during pre-copy: PEER_ABORT, the VM untouched', async () => {
    const { vm, options, counts } = source();
    let told = false;
    const port = await scriptedDestination(HOST, (f, s) => {
      if (f.type !== MessageType.Pages || told) return;
      told = true;
      s.end(encodeFrame(MessageType.Abort, new Uint8Array([3, 0, 0x41, 0x42, 0x43, 1, 0, 0x21])));
    });
    // Pre-copy never converges (threshold 0): only the ABORT ends it.
    const precopy = { stopBelowPages: 0, maxRounds: 1_000_000 };
    await assert.rejects(migrateOut(vm, { host: HOST, port }, { ...options, precopy }), (e: unknown) => e instanceof MigrationError && e.code === MigrationErrorCode.PeerAbort && /ABC/.test(e.message));
    untouched(vm, counts());
  });

  it('the STATE_PREVIEW refused: PEER_ABORT, the VM untouched (its guest never stopped)', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, (f, s) => {
      if (f.type === MessageType.StatePreview) s.end(encodeFrame(MessageType.Abort, new Uint8Array([3, 0, 0x41, 0x42, 0x43, 1, 0, 0x21])));
    }, encodeHelloAck(), false);
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), code(MigrationErrorCode.PeerAbort));
    untouched(vm, counts());
  });

  it('the STATE_PREVIEW never answered: TIMEOUT, the VM untouched', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, () => {}, encodeHelloAck(), false);
    await assert.rejects(migrateOut(vm, { host: HOST, port }, { ...options, timeoutMs: 300 }), code(MigrationErrorCode.Timeout));
    untouched(vm, counts());
  });

  it('garbage instead of CONFIRM: BAD_TYPE, the VM taken back (address, QPs, guest)', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, (f, s) => {
      if (f.type === MessageType.Switchover) s.write(rawHeader(0, 4242));
    });
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), code(MigrationErrorCode.BadType));
    tookBack(vm, counts(), true);
  });

  it('the destination fails to restore (ABORT instead of CONFIRM): PEER_ABORT, the VM taken back', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, (f, s) => {
      if (f.type === MessageType.Switchover) s.end(encodeFrame(MessageType.Abort, new Uint8Array([0, 0, 0, 0])));
    });
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), code(MigrationErrorCode.PeerAbort));
    tookBack(vm, counts(), true);
  });

  it('the destination hangs up before the switchover: CLOSED, the VM taken back', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, (f, s) => {
      if (f.type === MessageType.AppState) s.destroy();
    });
    await assert.rejects(migrateOut(vm, { host: HOST, port }, options), (e: unknown) => e instanceof MigrationError && (e.code === MigrationErrorCode.Closed || e.code === MigrationErrorCode.Switchover));
    tookBack(vm, counts(), vm.events.includes('release'));
  });

  it('the destination goes silent: TIMEOUT, the VM taken back', async () => {
    const { vm, options, counts } = source();
    const port = await scriptedDestination(HOST, () => {});
    await assert.rejects(migrateOut(vm, { host: HOST, port }, { ...options, timeoutMs: 300 }), code(MigrationErrorCode.Timeout));
    tookBack(vm, counts(), true);
  });
});
