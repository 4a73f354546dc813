export { ConfigError, isRetriable, SluiceError } from './errors';
export type { ConfigIssue, ErrorTraits } from './errors';
