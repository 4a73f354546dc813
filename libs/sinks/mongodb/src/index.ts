export * from './documents';
export * from './errors';
export * from './naming';
export * from './options';
export * from './sink';
export * from './test-support';
