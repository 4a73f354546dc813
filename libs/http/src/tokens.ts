// Bearer tokens as the gateway configures them: only the sha256 of a token is ever configured or
// kept, each carrying a scope (`*` or a list of names: devices for the gateway, regions for the
// query API). Inline: `<sha256-hex>=<name>|<name>;<sha256-hex>=*`. File: a JSON array of
// `{"name": "...", "sha256": "<hex>", "<field>": ["..."] | "*"}`.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '@sluice/errors';
import { HttpProblem } from './problem';

/** `*` (everything) or the names a token may use. */
export type TokenScope = '*' | ReadonlySet<string>;

/** One configured bearer token: its name (for logs, never the secret), its sha256 and what it grants. */
export interface HashedToken<C = TokenScope> {
  name: string;
  /** Lower-case hex sha256 of the token. */
  sha256: string;
  claims: C;
}

/** The authenticated caller of a request. */
export interface Principal<C = TokenScope> {
  /** The token's name. */
  name: string;
  claims: C;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Most tokens one API accepts (each request compares against all of them). */
export const MAX_TOKENS = 1000;
const MAX_TOKEN_LENGTH = 4096;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A fresh random token (48 hex characters) and its sha256, e.g. for a development default. */
export function generateToken(): { token: string; sha256: string } {
  const token = randomBytes(24).toString('hex');
  return { token, sha256: sha256Hex(token) };
}

/** Does `scope` grant `name`? */
export function scopeAllows(scope: TokenScope, name: string): boolean {
  return scope === '*' || scope.has(name);
}

export interface TokenSource {
  /** The environment variable named in errors, e.g. `AGGREGATOR_API_TOKENS`. */
  variable: string;
  /** What the scope lists, for messages and the file's field name, e.g. `regions`. */
  field: string;
}

function fail(variable: string, reason: string): never {
  throw new ConfigError(variable, reason);
}

function scopeOf(value: unknown, src: TokenSource, where: string): TokenScope {
  if (value === '*') return '*';
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === 'string' && v.length > 0 && v !== '*')
  )
    return new Set(value as string[]);
  return fail(src.variable, `${where}: ${src.field} must be "*" or a non-empty list of names`);
}

/** Parses `<sha256-hex>=<name>|<name>;<sha256-hex>=*`; throws {@link ConfigError} naming the variable. */
export function parseInlineTokens(raw: string, src: TokenSource): HashedToken[] {
  const parts = raw
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length > MAX_TOKENS) fail(src.variable, `at most ${MAX_TOKENS} tokens`);
  return parts.map((part, i) => {
    const eq = part.indexOf('=');
    const hash = part.slice(0, Math.max(eq, 0)).trim().toLowerCase();
    if (eq < 0 || !HEX64.test(hash))
      fail(
        src.variable,
        `entry ${i + 1}: expected <sha256-hex>=<${src.field}>|<${src.field}> or <sha256-hex>=* (the sha256 of the token, not the token)`,
      );
    const value = part.slice(eq + 1).trim();
    const claims = scopeOf(
      value === '*'
        ? '*'
        : value
            .split('|')
            .map((v) => v.trim())
            .filter(Boolean),
      src,
      `entry ${i + 1}`,
    );
    return { name: `token-${i + 1}`, sha256: hash, claims };
  });
}

/** Reads a JSON token file; throws {@link ConfigError} naming the variable (e.g. `..._TOKENS_FILE`). */
export function readTokenFile(path: string, src: TokenSource): HashedToken[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(src.variable, `${path}: ${(err as Error).message}`);
  }
  if (!Array.isArray(data)) fail(src.variable, `${path}: must be a JSON array`);
  if (data.length > MAX_TOKENS) fail(src.variable, `${path}: at most ${MAX_TOKENS} tokens`);
  return data.map((e: Record<string, unknown> | null, i) => {
    const where = `${path} entry ${i}`;
    const hash = typeof e?.['sha256'] === 'string' ? e['sha256'].toLowerCase() : '';
    if (!HEX64.test(hash)) fail(src.variable, `${where}: sha256 must be 64 hex characters`);
    const name = e?.['name'];
    return {
      name: typeof name === 'string' && name ? name : `file-${i}`,
      sha256: hash,
      claims: scopeOf(e?.[src.field], src, where),
    };
  });
}

/** Where a service's tokens are configured, for {@link configuredTokens}. */
export interface TokenSettings {
  /** `<sha256-hex>=<scope>;…` from `variable`. */
  inline: string;
  /** A JSON token file from `fileVariable`, if set. */
  file?: string | undefined;
  variable: string;
  fileVariable: string;
  /** What the scope lists (`regions`). */
  field: string;
  /** With none configured: refuse ({@link ConfigError}) when true, else generate a development token. */
  production: boolean;
  /** What the tokens open, for messages: `the query API`. */
  what: string;
  /** Told the generated development token, once. */
  warn: (obj: { token: string }, msg: string) => void;
}

/**
 * The inline and file tokens. With none, production refuses to start ({@link ConfigError}); elsewhere
 * one development token for every scope is generated and handed to `warn` once, so nothing is ever
 * served unauthenticated.
 */
export function configuredTokens(o: TokenSettings): HashedToken[] {
  const src = { variable: o.variable, field: o.field };
  const tokens = [
    ...parseInlineTokens(o.inline, src),
    ...(o.file ? readTokenFile(o.file, { ...src, variable: o.fileVariable }) : []),
  ];
  if (tokens.length > 0) return tokens;
  if (o.production)
    throw new ConfigError(
      o.variable,
      `${o.what} needs at least one token in production (${o.variable} or ${o.fileVariable}: <sha256-hex>=<${o.field}>|<${o.field}> or <sha256-hex>=*)`,
    );
  const dev = generateToken();
  o.warn(
    { token: dev.token },
    `${o.variable} is not set: ${o.what} accepts this generated development token for every ${o.field}`,
  );
  return [{ name: 'development', sha256: dev.sha256, claims: '*' }];
}

/**
 * Resolves `Authorization: Bearer <token>` to the configured token's principal. The presented
 * token's sha256 is compared with every configured hash in constant time, without early exit.
 */
export class BearerAuthenticator<C = TokenScope> {
  private readonly entries: Array<{ digest: Buffer; principal: Principal<C> }>;

  constructor(tokens: readonly HashedToken<C>[]) {
    if (tokens.length > MAX_TOKENS) throw new RangeError(`at most ${MAX_TOKENS} tokens`);
    this.entries = tokens.map((t) => {
      if (!HEX64.test(t.sha256))
        throw new RangeError(`token ${t.name}: sha256 must be 64 lower-case hex characters`);
      return {
        digest: Buffer.from(t.sha256, 'hex'),
        principal: { name: t.name, claims: t.claims },
      };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /** Throws a 401 {@link HttpProblem} (with `WWW-Authenticate`) for a missing, malformed or unknown token. */
  authenticate(authorization: string | undefined, realm: string): Principal<C> {
    const challenge = (error?: string) => ({
      'www-authenticate': `Bearer realm="${realm}"${error ? `, error="${error}"` : ''}`,
    });
    if (!authorization)
      throw new HttpProblem(401, 'missing credentials: send "Authorization: Bearer <token>"', {
        headers: challenge(),
      });
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    if (!m || m[1]!.length > MAX_TOKEN_LENGTH)
      throw new HttpProblem(401, 'malformed authorization: expected "Bearer <token>"', {
        headers: challenge('invalid_request'),
      });
    const digest = createHash('sha256').update(m[1]!).digest();
    let found: Principal<C> | undefined;
    for (const e of this.entries)
      if (timingSafeEqual(digest, e.digest) && !found) found = e.principal;
    if (!found)
      throw new HttpProblem(401, 'unknown bearer token', { headers: challenge('invalid_token') });
    return found;
  }
}
