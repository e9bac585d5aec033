// `npm run build` step: build the optional native addon, but never fail the build when the
// toolchain (g++, make, python3, Node's headers) is missing: print why and go on, since
// everything in vrdma works without the addon. VRDMA_REQUIRE_NATIVE=1 makes a failure fatal.
/* global process, console, URL */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// An already configured tree is rebuilt incrementally (make decides what changed); a fresh
// clone configures and builds from scratch.
const configured = existsSync(new URL('./build/Makefile', import.meta.url));
const script = configured ? 'build:native:incremental' : 'build:native';
const npm = process.env.npm_execpath;
const result = npm
  ? spawnSync(process.execPath, [npm, 'run', script], { stdio: 'inherit' })
  : spawnSync('npm', ['run', script], { stdio: 'inherit' });
if (result.status !== 0) {
  const why = result.error ? result.error.message : `exit status ${result.status}`;
  console.warn(
    `\nnote: the optional native addon did not build (${why}).\n` +
      '      vrdma works without it; native baselines, fd passing, memory mapping, eventfds and batched\n' +
      '      UDP are then unavailable and report why. Install g++, make and python3 and run\n' +
      '      "npm run build:native" to build it (see docs/native.md).\n',
  );
  if (process.env.VRDMA_REQUIRE_NATIVE === '1') process.exit(1);
}
