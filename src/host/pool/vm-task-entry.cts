// The file piscina's workers load for a VM task: CommonJS, so that the task (vm-task.ts, an ES
// module) is loaded with import() rather than through require(esm), which a worker terminated
// mid-load turns into a process abort (src/backend/backend-task-entry.cts says more).
export = async function runTask(input: unknown): Promise<unknown> {
  const task = await import('./vm-task.js');
  return task.default(input as Parameters<typeof task.default>[0]);
};
