// npm run fuzz [-- --iterations N --seed S --target split|packed]: adversarial rings against the
// virtqueue kernels. Not part of npm test (it runs for minutes); test/fuzz/*.test.ts run a short
// pass of the same targets on every test run. Exits non-zero on any violation.
import { parseArgs } from 'node:util';
import { fuzzPacked } from './packed.js';
import { fuzzSplit } from './split.js';

interface FuzzReport {
  iterations: number;
  errors: Record<string, number>;
  violations: string[];
}

const targets: Record<string, (iterations: number, seed: number) => FuzzReport> = {
  split: fuzzSplit,
  packed: fuzzPacked,
};

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
    target: { type: 'string', multiple: true },
  },
});
const iterations = Number(values.iterations);
const seed = Number(values.seed);
const names = values.target ?? Object.keys(targets);
let failed = false;
for (const name of names) {
  const target = targets[name];
  if (!target) {
    console.error(`unknown fuzz target "${name}"; known: ${Object.keys(targets).join(', ')}`);
    process.exit(2);
  }
  const started = performance.now();
  const result = target(iterations, seed);
  const seconds = (performance.now() - started) / 1000;
  const line = { target: name, seed, iterations: result.iterations, seconds: Number(seconds.toFixed(1)), errors: result.errors, violations: result.violations.length };
  console.log(JSON.stringify(line));
  for (const v of result.violations.slice(0, 20)) console.error(`  violation: ${v}`);
  if (result.violations.length > 0) failed = true;
}
process.exit(failed ? 1 : 0);
