// A child for ipc.test.ts whose `close` never answers and whose closing never ends, while a
// timer keeps its event loop alive. Does nothing when imported.
import { pathToFileURL } from 'node:url';
import { serveIpc } from '../../src/host/ipc.js';

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  setInterval(() => {}, 1000);
  const never = () => new Promise<never>(() => {});
  serveIpc({ ping: () => 'pong', close: never }, () => void never());
}
