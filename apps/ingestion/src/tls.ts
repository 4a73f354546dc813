import { readFileSync } from 'node:fs';
import { ConfigError } from '@sluice/errors';

/** TLS material of both listeners. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** CA verifying client certificates; enables mTLS. */
  ca?: Buffer | undefined;
  /** Refuse connections without a verified client certificate. */
  requireClientCert: boolean;
}

function read(path: string, variable: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Reads the TLS files; `undefined` when TLS is off. Throws {@link ConfigError}. */
export function loadTls(cfg: {
  INGEST_TLS_CERT?: string | undefined;
  INGEST_TLS_KEY?: string | undefined;
  INGEST_TLS_CA?: string | undefined;
  INGEST_TLS_REQUIRE_CLIENT_CERT: boolean;
}): TlsFiles | undefined {
  if (!cfg.INGEST_TLS_CERT && !cfg.INGEST_TLS_KEY) {
    if (cfg.INGEST_TLS_CA)
      throw new ConfigError('INGEST_TLS_CA', 'needs INGEST_TLS_CERT and INGEST_TLS_KEY');
    return undefined;
  }
  if (!cfg.INGEST_TLS_CERT || !cfg.INGEST_TLS_KEY)
    throw new ConfigError(
      'INGEST_TLS_CERT',
      'INGEST_TLS_CERT and INGEST_TLS_KEY must be set together',
    );
  return {
    cert: read(cfg.INGEST_TLS_CERT, 'INGEST_TLS_CERT'),
    key: read(cfg.INGEST_TLS_KEY, 'INGEST_TLS_KEY'),
    ca: cfg.INGEST_TLS_CA ? read(cfg.INGEST_TLS_CA, 'INGEST_TLS_CA') : undefined,
    requireClientCert: cfg.INGEST_TLS_REQUIRE_CLIENT_CERT,
  };
}
