// How the demo subcommands that run one checked scenario report it (`vrdma worker-crash`, `vrdma
// qp-shards`): what the scenario is, its progress lines and a closing summary line, or with --json
// only its report as one JSON object; FAILED and exit status 1 if it throws.

/** Run `scenario` (which says its progress through `say` unless json); returns the exit status. */
export async function runReportCli<R>(scope: string, json: boolean, scenario: (say?: (line: string) => void) => Promise<R>, summary: (report: R) => string): Promise<number> {
  if (!json) console.log(`${scope}\n`);
  try {
    const report = await scenario(json ? undefined : (line) => console.log(line));
    console.log(json ? JSON.stringify(report) : `\n${summary(report)}`);
    return 0;
  } catch (err) {
    console.error(`FAILED: ${(err as Error).message}`);
    return 1;
  }
}
