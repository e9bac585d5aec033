export * from './arena.js';
export * from './device-memory.js';
export * from './errors.js';
export * from './gpa.js';
export * from './guest-memory.js';
export * from './layout.js';
export * from './region-table.js';
export * from './write-log.js';
