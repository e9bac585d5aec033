// A host process that stops answering must not hang whoever forked it: stop() kills it after its
// reply deadline, and a child whose own closing hangs still exits once its parent disconnects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT_CLOSE_HUNG, IpcChild } from '../../src/host/ipc.js';

const HUNG = fileURLToPath(new URL('./ipc-hung-child.js', import.meta.url));

describe('IPC child lifecycle', () => {
  it('stop() kills a child that does not answer its close op, and says so', async () => {
    const child = new IpcChild(HUNG, { name: 'hung host' });
    await child.started;
    assert.equal(await child.call('ping'), 'pong');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const problem = await child.stop('close', 200);
      assert.match(problem ?? '', /hung host did not answer close within 200 ms; killed/);
      assert.equal(child.running, false);
      await new Promise((r) => setImmediate(r));
      assert.ok(warnings.some((w) => /did not answer close/.test(w)), warnings.join('\n'));
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a child whose closing hangs exits by itself after its parent disconnects', async () => {
    const child = new IpcChild(HUNG, { name: 'hung host' });
    await child.started;
    const code = new Promise<number | null>((resolve) => child.proc.once('exit', (c) => resolve(c)));
    // A grace far beyond the child's own deadline: the child must end itself, not be killed.
    await child.disconnect(60_000);
    assert.equal(await code, EXIT_CLOSE_HUNG);
  });
});
