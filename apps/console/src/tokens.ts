// The console's bearer tokens: exactly the query API's (AGGREGATOR_API_TOKENS plus
// AGGREGATOR_API_TOKENS_FILE, read as the aggregator reads them), so one token opens both.
import { configuredTokens, type HashedToken } from '@sluice/http';
import type { Logger } from '@sluice/observability';

/**
 * The configured tokens. With none, production refuses to start (`ConfigError`); elsewhere one
 * development token is generated and logged once (the query API has its own).
 */
export function consoleTokens(
  config: {
    AGGREGATOR_API_TOKENS: string;
    AGGREGATOR_API_TOKENS_FILE?: string | undefined;
    SLUICE_ENV: string;
  },
  log: Logger,
): HashedToken[] {
  return configuredTokens({
    inline: config.AGGREGATOR_API_TOKENS,
    file: config.AGGREGATOR_API_TOKENS_FILE,
    variable: 'AGGREGATOR_API_TOKENS',
    fileVariable: 'AGGREGATOR_API_TOKENS_FILE',
    field: 'regions',
    production: config.SLUICE_ENV === 'production',
    what: 'the console',
    warn: (obj, msg) => log.warn(obj, msg),
  });
}
