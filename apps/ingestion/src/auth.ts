import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { ConfigError } from '@sluice/errors';
import { AuthenticationError } from './errors';
import type { DeviceScope } from './validator';

/** An authenticated caller: a device, or a gateway credential publishing for several devices. */
export interface Principal {
  /** Name for logs and metrics (token name or certificate subject); never the secret. */
  name: string;
  devices: DeviceScope;
  /**
   * Stable opaque id of the credential (16 hex): batch ids and idempotency keys are scoped by it, so
   * one credential cannot collide with, or suppress, another's batches.
   */
  scope: string;
}

/** One configured bearer token: only its sha256 is stored. */
export interface TokenEntry {
  name: string;
  /** Lower-case hex sha256 of the token. */
  sha256: string;
  devices: DeviceScope;
}

const HEX64 = /^[0-9a-f]{64}$/;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function scope(value: unknown, where: string): DeviceScope {
  if (value === '*') return '*';
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((d) => typeof d === 'string' && d.length > 0)
  )
    return new Set(value as string[]);
  throw new ConfigError(where, 'devices must be "*" or a non-empty list of device ids');
}

/** Parses `INGEST_AUTH_TOKENS`: `<sha256>=<dev>|<dev>;<sha256>=*`. */
export function parseInlineTokens(raw: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const [i, part] of raw
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
    .entries()) {
    const eq = part.indexOf('=');
    const hash = part.slice(0, eq).trim().toLowerCase();
    if (eq < 0 || !HEX64.test(hash))
      throw new ConfigError(
        'INGEST_AUTH_TOKENS',
        `entry ${i + 1}: expected <sha256-hex>=<device>|<device> or <sha256-hex>=*`,
      );
    const devices = part.slice(eq + 1).trim();
    out.push({
      name: `token-${i + 1}`,
      sha256: hash,
      devices: scope(
        devices === '*'
          ? '*'
          : devices
              .split('|')
              .map((d) => d.trim())
              .filter(Boolean),
        `INGEST_AUTH_TOKENS entry ${i + 1}`,
      ),
    });
  }
  return out;
}

/** Reads `INGEST_AUTH_TOKENS_FILE`: `[{"name","sha256","devices":[...]|"*"}]`. */
export function readTokenFile(path: string): TokenEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError('INGEST_AUTH_TOKENS_FILE', `${path}: ${(err as Error).message}`);
  }
  if (!Array.isArray(data))
    throw new ConfigError('INGEST_AUTH_TOKENS_FILE', `${path}: must be a JSON array`);
  return data.map((e: { name?: unknown; sha256?: unknown; devices?: unknown }, i) => {
    const where = `INGEST_AUTH_TOKENS_FILE ${path} entry ${i}`;
    const hash = typeof e.sha256 === 'string' ? e.sha256.toLowerCase() : '';
    if (!HEX64.test(hash)) throw new ConfigError(where, 'sha256 must be 64 hex characters');
    return {
      name: typeof e.name === 'string' && e.name ? e.name : `file-${i}`,
      sha256: hash,
      devices: scope(e.devices, where),
    };
  });
}

/** Scope id of a credential: not the token hash itself, so stored message ids reveal nothing of it. */
function scopeOf(identity: string): string {
  return sha256Hex(identity).slice(0, 16);
}

/** Resolves bearer tokens and client certificates to principals. */
export class Authenticator {
  private readonly byHash = new Map<string, Principal>();

  constructor(tokens: readonly TokenEntry[]) {
    for (const t of tokens)
      this.byHash.set(t.sha256, {
        name: t.name,
        devices: t.devices,
        scope: scopeOf(`token\n${t.sha256}`),
      });
  }

  get tokenCount(): number {
    return this.byHash.size;
  }

  /**
   * A verified client certificate (if any) wins; else the `Authorization: Bearer` value.
   * Throws {@link AuthenticationError}.
   */
  authenticate(authorization: string | undefined, cert?: PeerCertificate): Principal {
    if (cert && cert.subject) {
      const p = principalFromCertificate(cert);
      if (p) return p;
    }
    if (!authorization)
      throw new AuthenticationError(
        'missing credentials: send "authorization: Bearer <token>" or a client certificate',
      );
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new AuthenticationError('malformed authorization: expected "Bearer <token>"');
    const principal = this.byHash.get(sha256Hex(m[1]!));
    if (!principal) throw new AuthenticationError('unknown bearer token');
    return principal;
  }
}

/** Device ids of a client certificate: its CN and its DNS/URI subject alternative names. */
export function principalFromCertificate(cert: PeerCertificate): Principal | undefined {
  const ids = new Set<string>();
  const cn = cert.subject?.CN;
  if (typeof cn === 'string' && cn) ids.add(cn);
  for (const san of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*(DNS|URI):(.+)$/.exec(san);
    if (m) ids.add(m[2]!.trim());
  }
  if (ids.size === 0) return undefined;
  return {
    name: `cert:${cn ?? [...ids][0]}`,
    devices: ids,
    scope: scopeOf(`cert\n${[...ids].sort().join('\n')}`),
  };
}
