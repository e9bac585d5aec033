export * from '../../../assembly/mr-abi.js';
export * from './errors.js';
export * from './page-table.js';
export * from './translate-twin.js';
export * from './translator.js';
