// The file piscina's workers load for a durable backend's task: CommonJS, so that piscina's
// require() of it is plain and the task itself (backend-task.ts, an ES module) is loaded with
// import(). piscina tries require() first, and Node 20 loads an ES module through require()
// synchronously (require(esm)); a worker terminated in the middle of that — a pool closing while
// the thread it started in place of a dead one still loads — aborted the whole process
// ("v8::Module::IsGraphAsync must be used on an instantiated module"). An import() is interrupted
// cleanly.
export = async function runTask(input: unknown): Promise<unknown> {
  const task = await import('./backend-task.js');
  return task.default(input as Parameters<typeof task.default>[0]);
};
