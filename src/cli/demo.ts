// `vrdma demo` (what `npm start` runs): the live-migration demo of src/demo/live-migration.ts,
// with its progress on stdout (or nothing but the JSON summary with --json). Returns the exit
// status: 0 only when the data was verified.
import { type DemoOptions, runLiveMigrationDemo } from '../demo/live-migration.js';
import { summaryLines } from '../demo/summary.js';

export async function runDemo(options: DemoOptions): Promise<number> {
  const { summary } = await runLiveMigrationDemo(options);
  if (options.json) {
    console.log(JSON.stringify(summary));
  } else {
    console.log('\nsummary');
    for (const line of summaryLines(summary)) console.log(line);
    if (options.report !== undefined) console.log(`\nreport: ${options.report}`);
  }
  return summary.verified ? 0 : 1;
}
