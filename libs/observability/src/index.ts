export * from './device-hash';
export * from './logger';
export * from './propagation';
export * from './tracing';
export * from './metric-names';
