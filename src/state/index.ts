export * from './errors.js';
export * from './header.js';
export * from './reader.js';
export * from './writer.js';
