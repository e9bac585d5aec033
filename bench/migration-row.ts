// One QP-blackout row of the migration suite in a process of its own (migration-switchover.ts
// forks it): `node migration-row.js <qps> <address base> preview|no-preview` prints the row as
// one JSON line. Does nothing when imported.
import { pathToFileURL } from 'node:url';
import { blackoutRow } from './migration-switchover.js';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [n, base, preview] = process.argv.slice(2);
  const row = await blackoutRow(Number(n), Number(base), preview === 'preview');
  process.stdout.write(`${JSON.stringify(row)}\n`);
  process.exit(0);
}
