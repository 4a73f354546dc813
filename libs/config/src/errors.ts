export { ConfigError, type ConfigIssue } from '@sluice/errors';
