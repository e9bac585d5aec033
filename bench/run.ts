// npm run bench -- [suite ...]: run the named suites (all when none is named); also `vrdma bench`.
import { pathToFileURL } from 'node:url';
import { report } from './harness.js';
import type { BenchRow } from './harness.js';

type Suite = () => Promise<BenchRow[]>;

export const suites: Record<string, () => Promise<Suite>> = {
  // Both ring formats, as issue "virtqueue" benchmarks are asked for together.
  virtqueue: async () => {
    const [split, packed] = [(await import('./virtqueue-split.js')).default, (await import('./virtqueue-packed.js')).default];
    return async () => [...(await split()), ...(await packed())];
  },
  'virtqueue-split': async () => (await import('./virtqueue-split.js')).default,
  native: async () => (await import('./native-baselines.js')).default,
  'virtqueue-packed': async () => (await import('./virtqueue-packed.js')).default,
  'roce-wire': async () => (await import('./roce-wire.js')).default,
  'roce-e2e': async () => (await import('./roce-e2e.js')).default,
  // The issue asks for `npm run bench -- roce`: the wire kernels and the end-to-end runs.
  roce: async () => {
    const [wire, e2e] = [(await import('./roce-wire.js')).default, (await import('./roce-e2e.js')).default];
    return async () => [...(await wire()), ...(await e2e())];
  },
  translate: async () => (await import('./translate.js')).default,
  'soft-roce': async () => (await import('./soft-roce.js')).default,
  net: async () => (await import('./net-udp.js')).default,
  migration: async () => (await import('./migration.js')).default,
  scaling: async () => (await import('./scaling.js')).default,
  durable: async () => (await import('./durable.js')).default,
  'qp-shards': async () => (await import('./qp-shards.js')).default,
};

/** Run suites by name; returns false (and says why) if a name is unknown. */
export async function runSuites(wanted: string[]): Promise<boolean> {
  const names = wanted.length > 0 ? wanted : Object.keys(suites);
  const unknown = names.filter((n) => !suites[n]);
  if (unknown.length > 0) {
    console.error(`unknown bench suite ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${Object.keys(suites).join(', ')}`);
    return false;
  }
  for (const name of names) {
    const suite = await suites[name]();
    report(await suite());
  }
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const ok = await runSuites(process.argv.slice(2).filter((a) => !a.startsWith('-')));
  process.exitCode = ok ? 0 : 2;
}
