import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { checkFrame, runPcapCheck } from '../../src/cli/pcap-check.js';
import { buildFrame, socketContext } from '../../src/nic/roce/frame.js';
import { TsIcrc } from '../../src/nic/roce/icrc.js';
import { Opcode } from '../../src/nic/roce/opcodes.js';
import { buildPacket } from '../../src/nic/roce/packet.js';
import { pcapHeader, pcapRecord, readPcap, writePcap } from '../../src/nic/roce/pcap.js';
import { loadVectors } from '../nic/roce/fixtures.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const vectors = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/vectors/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vrdma-pcap-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Line = Record<string, unknown>;

function check(path: string): { status: number; lines: Line[]; err: string } {
  let out = '';
  let err = '';
  const status = runPcapCheck(path, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, lines: out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line), err };
}

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** A good RC SEND ONLY frame from 127.0.1.5 to 127.0.1.6. */
function goodFrame(): Uint8Array {
  const ctx = socketContext(0x7f000105, 0x7f000106, 4791);
  const pkt = new Uint8Array(12 + 8 + 4);
  buildPacket({ opcode: Opcode.RcSendOnly, dqpn: 5, psn: 6 }, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), pkt, 0, { ctx, engine: new TsIcrc() });
  return buildFrame({ ctx }, pkt);
}

describe('vrdma pcap-check', () => {
  it('flags exactly the corrupt vectors of roce-v2.pcap and decodes the rest as listed', () => {
    const { status, lines, err } = check(vectors('roce-v2.pcap'));
    const vs = loadVectors();
    assert.equal(status, 1);
    assert.match(err, /wrong or unchecked ICRC/);
    assert.equal(lines.length, vs.length);
    assert.deepEqual(lines.map((l) => l.icrcOk), vs.map((v) => v.icrcOk));
    assert.ok(vs.some((v) => !v.icrcOk));
    for (const [i, v] of vs.entries()) {
      if (v.fields === null) continue;
      const l = lines[i];
      assert.deepEqual([l.opcode, l.psn, l.dqpn], [v.fields.opcode, v.fields.psn, v.fields.dqpn], v.name);
      if (v.fields.padcount !== undefined) assert.equal(l.padCount, v.fields.padcount, v.name);
      if (v.fields.payload_hex !== undefined) assert.equal(l.payloadBytes, v.fields.payload_hex.length / 2, v.name);
      if (v.fields.reth) assert.deepEqual(l.reth, { va: `0x${v.fields.reth.va.toString(16).padStart(16, '0')}`, rkey: `0x${v.fields.reth.rkey.toString(16).padStart(8, '0')}`, dmaLen: v.fields.reth.dmalen }, v.name);
      if (v.fields.aeth) assert.deepEqual([(l.aeth as Line).syndrome, (l.aeth as Line).msn], [v.fields.aeth.syndrome, v.fields.aeth.msn], v.name);
      if (v.fields.deth) assert.deepEqual((l.deth as Line).srcQp, v.fields.deth.srcqp, v.name);
      if (v.fields.immdt !== undefined) assert.equal(l.immDt, `0x${v.fields.immdt.toString(16).padStart(8, '0')}`, v.name);
      if (v.fields.atomicacketh) assert.deepEqual(l.atomicAckEth, { orig: `0x${v.fields.atomicacketh.orig.toString(16).padStart(16, '0')}` }, v.name);
    }
  });

  it('finds every frame of the Linux rxe capture right, through the real command', async () => {
    const { stdout } = await run(process.execPath, [cli, 'pcap-check', vectors('linux-rxe-send-4099.pcap')]);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
    assert.equal(lines.length, 60);
    assert.ok(lines.every((l) => l.icrcOk === true && l.error === undefined));
    assert.deepEqual(new Set(lines.map((l) => l.opcodeName)), new Set(['RC_SEND_FIRST', 'RC_SEND_MIDDLE', 'RC_SEND_LAST', 'RC_ACKNOWLEDGE']));
    assert.ok(lines.filter((l) => l.opcodeName === 'RC_SEND_LAST').every((l) => l.padCount === 1 && l.payloadBytes === 3));
  });

  it('exits 1 on a bad ICRC through the real command', async () => {
    const bad = goodFrame();
    bad[bad.length - 5] ^= 1;
    const path = file('bad.pcap', writePcap([{ timeNs: 0n, data: goodFrame() }, { timeNs: 1000n, data: bad }]));
    await assert.rejects(run(process.execPath, [cli, 'pcap-check', path]), (e: { code: number; stdout: string }) => {
      assert.equal(e.code, 1);
      assert.deepEqual(e.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Line).icrcOk), [true, false]);
      return true;
    });
  });

  it('reports non-RoCE and malformed frames with an error field, without failing on non-RoCE ones', () => {
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    const dns = goodFrame();
    dns[14 + 22] = 0; // UDP destination port 53
    dns[14 + 23] = 53;
    const ok = check(file('mixed.pcap', writePcap([arp, dns, goodFrame(), new Uint8Array(3)].map((data) => ({ timeNs: 0n, data })))));
    assert.equal(ok.status, 0);
    assert.deepEqual(ok.lines.map((l) => typeof l.error), ['string', 'string', 'undefined', 'string']);
    assert.match(String(ok.lines[0].error), /ethertype 0x806 is not IPv4/);
    assert.match(String(ok.lines[1].error), /UDP port 53 is not 4791/);

    // Aimed at port 4791 but broken: the ICRC cannot be right, so the check fails.
    const badLen = goodFrame();
    badLen[14 + 25] += 4; // UDP length disagrees with IPv4's
    const unknownOp = goodFrame();
    unknownOp[14 + 28] = 0x81; // an opcode vrdma does not speak, ICRC now wrong too
    const cut = goodFrame();
    const snapped = new Uint8Array(24 + 16 + 50);
    snapped.set(pcapHeader());
    snapped.set(pcapRecord(cut, 0n, 50), 24);
    for (const [name, bytes, pattern] of [
      ['badlen', writePcap([{ timeNs: 0n, data: badLen }]), /UDP length/],
      ['unknown-op', writePcap([{ timeNs: 0n, data: unknownOp }]), /UNKNOWN_OPCODE/],
      ['snapped', snapped, /cut to 50 of 66 bytes/],
    ] as const) {
      const r = check(file(`${name}.pcap`, bytes));
      assert.equal(r.status, 1, name);
      assert.match(String(r.lines[0].error), pattern, name);
    }
  });

  it('refuses hostile files with a clear message and status 2, after the frames it could read', async () => {
    const good = writePcap([{ timeNs: 0n, data: goodFrame() }, { timeNs: 0n, data: goodFrame() }]);
    const giant = new Uint8Array(good.length + 16);
    giant.set(good);
    new DataView(giant.buffer).setUint32(good.length + 8, 0xffffffff, true);
    const pcapng = Uint8Array.of(0x0a, 0x0d, 0x0d, 0x0a, ...new Uint8Array(28));
    const cases: [string, Uint8Array, RegExp, number][] = [
      ['truncated-record', good.subarray(0, good.length - 7), /record at offset \d+ claims 66 bytes but the file ends after 59/, 1],
      ['truncated-header', good.subarray(0, good.length - 66 - 5), /record header at offset \d+ cut short/, 1],
      ['short-file', good.subarray(0, 10), /10 bytes cannot hold a pcap file header/, 0],
      ['bad-magic', Uint8Array.of(...'not a capture at all, really'.split('').map((c) => c.charCodeAt(0))), /bad magic 0x6e6f7420: not a pcap file/, 0],
      ['pcapng', pcapng, /pcapng/, 0],
      ['giant-record', giant, /claims 4294967295 bytes, more than any capture holds/, 2],
    ];
    for (const [name, bytes, pattern, framesBefore] of cases) {
      const r = check(file(`${name}.pcap`, bytes));
      assert.equal(r.status, 2, name);
      assert.match(r.err, /^vrdma pcap-check: BAD_CAPTURE: malformed capture file: /, name);
      assert.match(r.err, pattern, name);
      assert.equal(r.lines.length, framesBefore, name);
    }
    const missing = check(join(dir, 'missing.pcap'));
    assert.equal(missing.status, 2);
    assert.match(missing.err, /CAPTURE_IO: .*cannot open .*missing\.pcap: ENOENT/);
    await assert.rejects(run(process.execPath, [cli, 'pcap-check', join(dir, 'giant-record.pcap')]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /4294967295 bytes/);
      return true;
    });
  });

  it('stops quietly when its reader goes away (| head)', async () => {
    const rxe = readPcap(new Uint8Array(readFileSync(vectors('linux-rxe-send-4099.pcap'))));
    const path = file('long.pcap', writePcap(Array.from({ length: 50 }, () => rxe).flat()));
    const child = spawn(process.execPath, [cli, 'pcap-check', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const [code] = await once(child, 'exit');
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('never throws on random frames or random files', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 300 }), (data, wire) => {
        const v = checkFrame(1, { timeNs: 0n, data, wireBytes: Math.max(wire, data.length) });
        assert.equal(typeof v.report.frame, 'number');
        if (v.report.error === undefined) assert.equal(v.roce, true);
      }),
      { numRuns: 500 },
    );
    const frame = goodFrame();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: frame.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (flips) => {
        const data = frame.slice();
        for (const [at, x] of flips) data[at] ^= x;
        const v = checkFrame(1, { timeNs: 0n, data, wireBytes: data.length });
        // Any change below the Ethernet header, except to fields the ICRC masks, makes it wrong.
        const changed = [...data.keys()].filter((i) => data[i] !== frame[i]);
        if (v.roce && v.icrcOk) assert.ok(changed.every((at) => at < 14 || [15, 22, 24, 25, 40, 41, 46].includes(at)), JSON.stringify(changed));
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
        const bytes = new Uint8Array(24 + tail.length);
        bytes.set(pcapHeader());
        bytes.set(tail, 24);
        assert.ok([0, 1, 2].includes(check(file('random.pcap', bytes)).status));
      }),
      { numRuns: 100 },
    );
  });
});
