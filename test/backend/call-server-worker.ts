// Not a test file: a worker thread that serves calls on the control block in workerData.buffer
// for call-channel.test.ts (add, echo, fail, refuse). Posts 'ready'; on 'stop' stops serving and
// posts 'stopped'. Imported on the main thread it does nothing.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CallServer } from '../../src/backend/call-channel.js';
import { ControlBlock } from '../../src/backend/control-block.js';
import { BackendError, BackendErrorCode } from '../../src/backend/errors.js';

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const block = ControlBlock.attach((workerData as { buffer: unknown }).buffer);
  const server = new CallServer(block, ({ method, args }) => {
    switch (method) {
      case 'add':
        return (args[0] as number) + (args[1] as number);
      case 'echo':
        return args[0];
      case 'fail':
        throw new Error('boom');
      case 'refuse':
        throw new BackendError(BackendErrorCode.NotOwner, 'not yours');
      default:
        throw new Error(`no method ${method}`);
    }
  });
  port.on('message', (m) => {
    if (m === 'stop') server.stop();
  });
  void server.serve().then(() => port.postMessage('stopped'));
  port.postMessage('ready');
}
