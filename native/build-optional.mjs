// `npm run build` step: build the optional native addon, but never fail the build when the
// toolchain (g++, make, python3, Node's headers) is missing: print why and go on, since
// everything in vrdma works without the addon. VRDMA_REQUIRE_NATIVE=1 makes a failure fatal.
/* global process, console */
import { spawnSync } from 'node:child_process';

const npm = process.env.npm_execpath;
const result = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build:native'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build:native'], { stdio: 'inherit' });
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
