// The one Wasm module of vrdma: every kernel, compiled once and instantiated by each thread
// against a device's shared memory. Conventions (docs/architecture.md, "Wasm ABI"):
// pointers are u32 offsets into that memory; 64-bit values cross the JS boundary as f64 or in
// parameter blocks in memory; results are counts or offsets >= 0, or a status < 0 (status.ts).
// Kernels never allocate and keep no state in globals: all state lives in shared memory.

export * from "./region";
export * from "./split-ring";
export * from "./packed-ring";
export * from "./icrc";
export * from "./mr";
export * from "./dirty-log";

/** End of the module's static data; the loader checks it fits below the region table. */
export function kernelDataEnd(): usize {
  return __heap_base;
}
