export * from './device-hash';
export * from './logger';
export * from './propagation';
export * from './tracing';
export { markSelfTraced } from './self-traced';
export * from './metric-names';
