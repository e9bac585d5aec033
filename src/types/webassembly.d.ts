// The part of the WebAssembly JS API that vrdma uses. Node provides the API; @types/node 20 does
// not declare it, and lib.dom would bring a browser's globals with it.
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  class Module {
    constructor(bytes: ArrayBufferView | ArrayBuffer);
    static exports(module: Module): { name: string; kind: string }[];
    static imports(module: Module): { module: string; name: string; kind: string }[];
  }
  type ExportValue = ((...args: number[]) => number) | Memory | Global;
  type Exports = Record<string, ExportValue>;
  type Imports = Record<string, Record<string, unknown>>;
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Exports;
  }
  class Global {
    value: number;
  }
  class RuntimeError extends Error {}
  class CompileError extends Error {}
  function validate(bytes: ArrayBufferView | ArrayBuffer): boolean;
}
