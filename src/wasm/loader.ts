// The one loader of the Wasm kernels (assembly/index.ts -> build/kernels.wasm).
//
// The module is compiled once per thread and cached; a compiled WebAssembly.Module can also be
// handed to a worker through workerData and reused there. Each device memory gets its own
// instance, since the module imports its memory. Set VRDMA_WASM_DEBUG=1 to load the debug build.
import { readFileSync } from 'node:fs';
import { WASM_DATA_BYTES } from '../memory/layout.js';

/** The exports every kernel family adds to; each family narrows it with its own interface. */
export type KernelExports = WebAssembly.Exports;

let cachedModule: WebAssembly.Module | undefined;

function wasmPath(): URL {
  const name = process.env.VRDMA_WASM_DEBUG === '1' ? 'kernels.debug.wasm' : 'kernels.wasm';
  // dist/src/wasm/loader.js -> build/
  return new URL(`../../../build/${name}`, import.meta.url);
}

/** The compiled kernel module, compiled on first use. */
export function kernelModule(): WebAssembly.Module {
  if (cachedModule === undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(wasmPath());
    } catch (err) {
      throw new Error(`Wasm kernels not built (${wasmPath().pathname}): run "npm run build"`, { cause: err });
    }
    cachedModule = new WebAssembly.Module(bytes);
  }
  return cachedModule;
}

/** Instantiate the kernels against a device's shared memory. */
export function instantiateKernels(memory: WebAssembly.Memory, module: WebAssembly.Module = kernelModule()): KernelExports {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort(_msg: number, _file: number, line: number, col: number): never {
        throw new Error(`Wasm kernel aborted at ${line}:${col}`);
      },
    },
  });
  const dataEnd = (instance.exports.kernelDataEnd as () => number)();
  if (dataEnd > WASM_DATA_BYTES) {
    throw new Error(`Wasm kernels' static data ends at ${dataEnd}, past the ${WASM_DATA_BYTES} bytes the layout keeps for it`);
  }
  return instance.exports;
}
