export * from './errors';
export * from './load';
export * from './fields';
export * from './common';
export { z } from 'zod';
export * from './tls';
