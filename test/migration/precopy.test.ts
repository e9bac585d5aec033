// Pre-copy of guest RAM over the real protocol and real DeviceMemory on both sides: the decision
// rule, page-set arithmetic, and whole migrations of a guest that keeps writing (through its vCPU
// and through the device) until it is paused — the destination's RAM must equal the source's at
// the pause, byte for byte, whichever way pre-copy stopped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { listenForMigration } from '../../src/migration/destination.js';
import { Arena } from '../../src/memory/arena.js';
import { DirtyLog } from '../../src/migration/dirty-log.js';
import { allPages, harvestAll, precopyDecision, unionPages } from '../../src/migration/precopy.js';
import { migrateOut, type MigrationProgress } from '../../src/migration/source.js';
import type { WorkCompletion } from '../../src/nic/verbs.js';
import { FakeDestinationVm, FakeSourceVm, snapshotRam } from './fake-vm.js';

const MiB = 1024 * 1024;
const HOST = '127.0.24.1';

describe('pre-copy decision', () => {
  it('stops exactly when the dirty set is under the threshold or the rounds are used up', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 60 }), fc.nat(2000), (stopBelowPages, maxRounds, roundsDone, dirty) => {
        const d = precopyDecision({ stopBelowPages, maxRounds }, roundsDone, dirty);
        if (dirty < stopBelowPages) assert.equal(d, 'converged');
        else if (roundsDone >= maxRounds) assert.equal(d, 'round-limit');
        else assert.equal(d, null);
      }),
      { seed: 3 },
    );
  });

  it('page sets: union is the sorted set union; allPages covers the regions', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat(5000), { maxLength: 50 }), { maxLength: 4 }), (sets) => {
        const u = unionPages(...sets.map((s) => Uint32Array.from(s)));
        assert.deepEqual([...u], [...new Set(sets.flat())].sort((a, b) => a - b));
      }),
      { seed: 4 },
    );
    assert.deepEqual([...allPages([{ gpa: 3 * 4096, size: 8192 }, { gpa: 0, size: 4096 }])], [0, 3, 4]);
  });

  it('a log that lost a write (past what it covers) makes every page dirty once, then harvests as before', () => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4, shared: true });
    const arena = new Arena(64 * 1024, 128 * 1024);
    const [device, cpu] = [DirtyLog.create(memory, arena, 16 * 4096, { outCap: 16 }), DirtyLog.create(memory, arena, 16 * 4096, { outCap: 16 })];
    const regions = [{ gpa: 0, size: 16 * 4096 }, { gpa: 1024 * 4096, size: 2 * 4096 }];
    device.start();
    cpu.start();
    device.mark(2 * 4096, 8);
    cpu.mark(5 * 4096, 8);
    assert.deepEqual([...harvestAll([device, cpu], regions)], [2, 5]);
    // A region plugged above the logs' cover (512 pages: whole 64-byte lines): a write there cannot be marked.
    device.mark(1024 * 4096 + 100, 8);
    assert.equal(device.overflowed, true);
    assert.deepEqual([...harvestAll([device, cpu], regions)], [...allPages(regions)]);
    assert.equal(device.overflowed, false, 'the harvest that resent everything cleared it');
    cpu.mark(7 * 4096, 1);
    assert.deepEqual([...harvestAll([device, cpu], regions)], [7]);
  });
});

/** A deterministic guest: writes `pagesPerTurn` pages per event-loop turn until stopped. */
function startWriter(vm: FakeSourceVm, regions: { gpa: number; size: number }[], pagesPerTurn: number, seed: number) {
  let x = seed >>> 0;
  const rand = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
  let running = true;
  let writes = 0;
  const turn = () => {
    if (!running) return;
    for (let i = 0; i < pagesPerTurn; i++) {
      const r = regions[rand() % regions.length];
      // Most writes land in a small hot set, as real working sets do; some anywhere.
      const page = rand() % 8 === 0 ? rand() % (r.size / 4096) : rand() % 16;
      const at = r.gpa + page * 4096 + (rand() % 4000);
      const bytes = Uint8Array.from({ length: 1 + (rand() % 96) }, () => rand() & 0xff);
      if (rand() % 2 === 0) vm.guestWrite(at, bytes);
      else vm.deviceWrite(at, bytes);
      writes++;
    }
    setImmediate(turn);
  };
  setImmediate(turn);
  return {
    stop: () => {
      running = false;
    },
    get writes() {
      return writes;
    },
  };
}

async function migrate(opts: { pagesPerTurn: number; stopBelowPages: number; maxRounds: number; qpns?: number[] }) {
  const regions = [{ gpa: 0, size: 4 * MiB }, { gpa: 64 * MiB, size: 2 * MiB }];
  const src = new FakeSourceVm('127.0.24.50', regions, 8 * MiB, opts.qpns ?? []);
  // Some content everywhere before the migration starts, and zero pages in between.
  for (let p = 0; p < 1024; p += 3) src.dm.guest.bytes.fill(p & 0xff, src.dm.guest.translate(p * 4096 as never, 4096), src.dm.guest.translate(p * 4096 as never, 4096) + 4096);
  const writer = startWriter(src, regions, opts.pagesPerTurn, 77);
  let atPause: Uint8Array | null = null;
  let dest: FakeDestinationVm | null = null;
  const pending = new Set(opts.qpns ?? []);
  const listener = listenForMigration({ host: HOST, port: 0 }, {
    restoreVm: async (parts) => {
      dest = new FakeDestinationVm(parts, () => {
        const q = pending.values().next();
        if (q.done) return [];
        pending.delete(q.value);
        return [{ qpNum: q.value } as WorkCompletion];
      });
      return dest;
    },
    // The workload polls its CQs from its first turn on.
    resumeGuest: (vm) => {
      const poll = setInterval(() => {
        vm.verbs.pollCq(0, 16);
        if (pending.size === 0) clearInterval(poll);
      }, 1);
    },
  });
  const { port } = await listener.ready;
  const progress: MigrationProgress[] = [];
  const report = await migrateOut(src, { host: HOST, port }, {
    pauseGuest: async () => {
      writer.stop();
      atPause = src.ram();
      return new TextEncoder().encode('app state');
    },
    precopy: { stopBelowPages: opts.stopBelowPages, maxRounds: opts.maxRounds },
    blackoutWatchMs: 2000,
    onProgress: (p) => progress.push(p),
  });
  const accepted = await listener.accepted;
  assert.ok(atPause !== null && dest !== null);
  const d = dest as FakeDestinationVm;
  assert.ok(Buffer.from(snapshotRam(d.parts.dm)).equals(Buffer.from(atPause)), 'destination RAM equals the source RAM at the pause');
  assert.equal(new TextDecoder().decode(accepted.appState), 'app state');
  assert.deepEqual([...d.parts.deviceState], [0xde, 0x51, (opts.qpns ?? []).length]);
  assert.equal(accepted.vm, d);
  assert.ok(src.closed, 'the source VM is closed once the destination runs it');
  assert.ok(!src.dirtyLog.enabled && !src.cpuLog.enabled, 'logging stops with the migration');
  assert.equal(progress.at(-1)?.phase, 'done');
  return { report, src, dest: d, writes: writer.writes };
}

describe('pre-copy over the protocol', () => {
  it('converges for a guest with a small hot set; the last round is small', async () => {
    const { report, writes } = await migrate({ pagesPerTurn: 4, stopBelowPages: 64, maxRounds: 30 });
    assert.ok(writes > 0, 'the guest wrote during pre-copy');
    assert.equal(report.stopReason, 'converged');
    assert.equal(report.rounds[0].pages, 1536, 'round 0 sends every page of both regions');
    assert.ok(report.rounds[0].zeroPages > 0 && report.rounds[0].zeroPages < 1536);
    const last = report.rounds.at(-1)!;
    assert.ok(last.final);
    assert.ok(last.pages < 64 + 4 * 10, `final round of ${last.pages} pages`);
    assert.equal(report.pagesMoved, report.rounds.reduce((n, r) => n + r.pages, 0));
    assert.ok(report.bytesMoved > report.rounds.reduce((n, r) => n + r.bytes, 0));
    assert.ok(report.downtimeMs >= 0 && report.totalMs >= report.downtimeMs);
  });

  it('stops at the round limit when the guest dirties faster than the threshold', async () => {
    const { report } = await migrate({ pagesPerTurn: 64, stopBelowPages: 0, maxRounds: 3 });
    assert.equal(report.stopReason, 'round-limit');
    assert.deepEqual(report.rounds.map((r) => r.round), [0, 1, 2, 3]);
    assert.deepEqual(report.rounds.map((r) => r.final), [false, false, false, true]);
  });

  it('suspends every RTS QP, resumes them on the destination, and measures each blackout', async () => {
    const qpns = [17, 18, 40, 41];
    const { report, src, dest } = await migrate({ pagesPerTurn: 1, stopBelowPages: 64, maxRounds: 10, qpns });
    assert.deepEqual(src.events, ['suspend 17', 'suspend 18', 'suspend 40', 'suspend 41', 'release']);
    assert.deepEqual(dest.resumed, qpns);
    assert.deepEqual(report.blackout.perQp.map((q) => q.qpn), qpns);
    assert.ok(report.blackout.perQp.every((q) => q.ms !== null && q.ms >= 0), JSON.stringify(report.blackout));
    assert.ok(report.blackout.p50Ms !== null && report.blackout.p99Ms !== null && report.blackout.p50Ms <= report.blackout.p99Ms);
  });
});
