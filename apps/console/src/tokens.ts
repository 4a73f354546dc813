// The console's bearer tokens: exactly the query API's (AGGREGATOR_API_TOKENS plus
// AGGREGATOR_API_TOKENS_FILE, read as the aggregator reads them), so one token opens both.
import { ConfigError } from '@sluice/errors';
import { generateToken, parseInlineTokens, readTokenFile, type HashedToken } from '@sluice/http';
import type { Logger } from '@sluice/observability';

const TOKEN_SOURCE = { variable: 'AGGREGATOR_API_TOKENS', field: 'regions' };

/**
 * The configured tokens. With none, production refuses to start ({@link ConfigError}); elsewhere one
 * development token is generated and logged once, so the console is never served unauthenticated.
 */
export function consoleTokens(
  config: {
    AGGREGATOR_API_TOKENS: string;
    AGGREGATOR_API_TOKENS_FILE?: string | undefined;
    SLUICE_ENV: string;
  },
  log: Logger,
): HashedToken[] {
  const tokens = [
    ...parseInlineTokens(config.AGGREGATOR_API_TOKENS, TOKEN_SOURCE),
    ...(config.AGGREGATOR_API_TOKENS_FILE
      ? readTokenFile(config.AGGREGATOR_API_TOKENS_FILE, {
          ...TOKEN_SOURCE,
          variable: 'AGGREGATOR_API_TOKENS_FILE',
        })
      : []),
  ];
  if (tokens.length > 0) return tokens;
  if (config.SLUICE_ENV === 'production')
    throw new ConfigError(
      'AGGREGATOR_API_TOKENS',
      'the console needs at least one token in production (the query API tokens: AGGREGATOR_API_TOKENS or AGGREGATOR_API_TOKENS_FILE)',
    );
  const dev = generateToken();
  log.warn(
    { token: dev.token },
    'AGGREGATOR_API_TOKENS is not set: the console accepts this generated development token (the query API has its own)',
  );
  return [{ name: 'development', sha256: dev.sha256, claims: '*' }];
}
