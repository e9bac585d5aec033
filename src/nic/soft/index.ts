export * from './options.js';
export * from './soft-roce.js';
