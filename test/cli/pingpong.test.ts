// `vrdma pingpong` against itself: a server and a client process, each with its own VM on its
// own loopback address, meeting through rc_pingpong's TCP address exchange.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeDest, encodeDest, formatGid, gidOfIpv4, PINGPONG_MESSAGE_BYTES } from '../../src/host/pingpong-exchange.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

interface Done { code: number | null; stdout: string; stderr: string }

function start(args: string[]): { proc: ChildProcess; done: Promise<Done>; port: Promise<number> } {
  const proc = spawn(process.execPath, [cli, 'pingpong', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let announce: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (announce = resolve));
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    const m = /listening on TCP port (\d+)/.exec(stderr);
    if (m !== null) announce(Number(m[1]));
  });
  const done = new Promise<Done>((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
  return { proc, done, port };
}

/** Server (no host) and client, both to completion. */
async function pingpong(serverArgs: string[], clientArgs: string[]): Promise<[Done, Done]> {
  const server = start(['-p', '0', ...serverArgs]);
  const port = await Promise.race([server.port, server.done.then((d) => { throw new Error(`server exited: ${d.stderr}`); })]);
  const client = start(['-p', String(port), ...clientArgs, '127.0.0.1']);
  return Promise.all([server.done, client.done]);
}

function checkSummary(d: Done, localIp: string, remoteIp: string, size: number, iters: number): void {
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, new RegExp(`local address: {2}LID 0x0000, QPN 0x[0-9a-f]{6}, PSN 0x[0-9a-f]{6}, GID ::ffff:${localIp.replaceAll('.', '\\.')}\\n`));
  assert.match(d.stdout, new RegExp(`remote address: LID 0x0000, QPN 0x[0-9a-f]{6}, PSN 0x[0-9a-f]{6}, GID ::ffff:${remoteIp.replaceAll('.', '\\.')}\\n`));
  assert.match(d.stdout, new RegExp(`^${size * iters * 2} bytes in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d Mbit/sec$`, 'm'));
  assert.match(d.stdout, new RegExp(`^${iters} iters in \\d+\\.\\d\\d seconds = \\d+\\.\\d\\d usec/iter$`, 'm'));
}

describe('vrdma pingpong', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vrdma-pingpong-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the address message is rc_pingpong\'s 52-byte format and round-trips', () => {
    const gid = gidOfIpv4('127.0.1.31');
    const msg = encodeDest({ lid: 0, qpn: 0x11, psn: 0xabcdef, gid });
    assert.equal(msg.length, PINGPONG_MESSAGE_BYTES);
    assert.equal(new TextDecoder().decode(msg.subarray(0, 51)), '0000:000011:abcdef:00000000000000000000ffff7f00011f');
    assert.equal(msg[51], 0);
    assert.deepEqual(decodeDest(msg), { lid: 0, qpn: 0x11, psn: 0xabcdef, gid });
    assert.equal(formatGid(gid), '::ffff:127.0.1.31');
    assert.equal(formatGid(Uint8Array.of(0xfe, 0x80, ...new Array<number>(13).fill(0), 1)), 'fe80::1');
    assert.throws(() => decodeDest(new TextEncoder().encode('0000:11:22:nothex')), /malformed/);
  });

  it('server and client processes complete their exchanges and print their summaries', async () => {
    const [server, client] = await pingpong(['--ip', '127.0.1.31', '-n', '300'], ['--ip', '127.0.1.32', '-n', '300']);
    checkSummary(server, '127.0.1.31', '127.0.1.32', 4096, 300);
    checkSummary(client, '127.0.1.32', '127.0.1.31', 4096, 300);
  });

  it('with --capture, the file passes pcap-check (small MTU, odd size, shallow rx depth)', async () => {
    const file = join(dir, 'pingpong.pcap');
    const opts = ['-n', '100', '-s', '5000', '-m', '512', '-r', '4'];
    const [server, client] = await pingpong(['--ip', '127.0.1.33', ...opts], ['--ip', '127.0.1.34', '--capture', file, ...opts]);
    checkSummary(server, '127.0.1.33', '127.0.1.34', 5000, 100);
    checkSummary(client, '127.0.1.34', '127.0.1.33', 5000, 100);
    const { stdout } = await run(process.execPath, [cli, 'pcap-check', file], { maxBuffer: 64 << 20 });
    const frames = stdout.trim().split('\n').map((l) => JSON.parse(l) as { icrcOk: boolean; opcodeName: string; payloadBytes: number; src: string; psn: number });
    // 100 messages each way of ceil(5000 / 512) = 10 packets, plus the ACKs. A busy machine can
    // make go-back-N resend a few packets, and the capture records those too: count each
    // (sender, PSN) once.
    assert.ok(frames.every((f) => f.icrcOk));
    const sends = new Map<string, number>();
    for (const f of frames) if (f.opcodeName.startsWith('RC_SEND')) sends.set(`${f.src}/${f.psn}`, f.payloadBytes);
    assert.equal([...sends.values()].reduce((n, b) => n + b, 0), 2 * 100 * 5000);
  });

  it('refuses a GID index the VM does not have, and a bad MTU', async () => {
    await assert.rejects(run(process.execPath, [cli, 'pingpong', '-m', '1000']), (e: { code: number; stderr: string }) => {
      assert.notEqual(e.code, 0);
      assert.match(e.stderr, /256, 512, 1024, 2048 or 4096/);
      return true;
    });
    await assert.rejects(run(process.execPath, [cli, 'pingpong', '-g', '3', '--ip', '127.0.1.35', '-p', '0']), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /GID index 3/);
      return true;
    });
  });
});
