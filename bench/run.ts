// npm run bench -- [suite ...]: run the named suites (all when none is named).
import { report } from './harness.js';
import type { BenchRow } from './harness.js';

type Suite = () => Promise<BenchRow[]>;

const suites: Record<string, () => Promise<Suite>> = {
  'roce-wire': async () => (await import('./roce-wire.js')).default,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length > 0 ? wanted : Object.keys(suites);
for (const name of names) {
  const load = suites[name];
  if (!load) {
    console.error(`unknown bench suite "${name}"; known: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  const suite = await load();
  report(await suite());
}
