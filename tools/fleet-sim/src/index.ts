export * from './fleet';
export * from './load';
export * from './run';
export * from './stats';
export * from './transports';
export * from './wire-json';
