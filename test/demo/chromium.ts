// Rendering a page in headless Chromium (Debian's package, which .ci/run installs) and returning
// the DOM after its scripts ran. Not a test file.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

export const CHROMIUM = '/usr/bin/chromium';

export async function dumpDom(file: string): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'vrdma-chromium-'));
  try {
    const { stdout } = await promisify(execFile)(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', `--user-data-dir=${profile}`, '--dump-dom', pathToFileURL(file).href,
    ], { timeout: 60_000, maxBuffer: 16 << 20 });
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}
