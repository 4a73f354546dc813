// The key-encryption keys of the signing secrets, from the environment: the zod fields and checks
// config.ts is built with, and the keyring made from the parsed config.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from '@sluice/config';
import { KEY_BYTES, KEY_ID, SecretKeyring, type SecretKeyEntry } from './envelope';
import type { SecretKeyVariable } from './errors';

/** Id of the development key, used when no key is configured outside production. */
export const DEV_KEY_ID = 'dev';
/**
 * The development key: public (the SHA-256 of a fixed string), so data written with it stays
 * readable from one run to the next and from one checkout to another; refused in production.
 */
export const DEV_KEY = createHash('sha256')
  .update('sluice-development-only-webhook-secret-key')
  .digest();

const MAX_FILE_BYTES = 64 * 1024;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The `<keyId>:<base64 of 32 bytes>` entries of `text`, separated by commas or line breaks (blank
 * lines and lines starting with `#` are skipped); the first problem as a string.
 */
export function parseKeyEntries(
  text: string,
  variable: SecretKeyVariable,
): SecretKeyEntry[] | string {
  const out: SecretKeyEntry[] = [];
  const items = text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .flatMap((line) => line.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const [i, item] of items.entries()) {
    const colon = item.indexOf(':');
    const id = colon < 0 ? '' : item.slice(0, colon).trim();
    const b64 = colon < 0 ? '' : item.slice(colon + 1).trim();
    const which = `entry ${i + 1}`;
    if (colon < 0) return `${which} is not <keyId>:<base64 of ${KEY_BYTES} bytes>`;
    if (!KEY_ID.test(id))
      return `${which}: key id "${id}" must be letters, digits, ".", "_" or "-" (at most 64, starting with a letter or digit)`;
    const key = BASE64.test(b64) ? Buffer.from(b64, 'base64') : undefined;
    if (key?.length !== KEY_BYTES)
      return `key "${id}" must be base64 of ${KEY_BYTES} bytes (e.g. the output of \`openssl rand -base64 32\`)${key ? `, got ${key.length} bytes` : ''}`;
    if (out.some((e) => e.id === id)) return `key id "${id}" is listed twice`;
    out.push({ id, key, variable });
  }
  return out;
}

/** `WEBHOOK_SECRET_KEYS`: entries in the variable itself; `[]` when unset. */
export const keysField = () =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return [];
      const parsed = parseKeyEntries(raw, 'WEBHOOK_SECRET_KEYS');
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: parsed });
        return z.NEVER;
      }
      return parsed;
    });

/** `WEBHOOK_SECRET_KEYS_FILE`: the path of a file of entries, read once at start; `[]` when unset. */
export const keysFileField = () =>
  z
    .string()
    .optional()
    .transform((path, ctx) => {
      if (path === undefined) return [];
      let text: string;
      try {
        const bytes = readFileSync(path);
        if (bytes.length > MAX_FILE_BYTES)
          throw new Error(`is ${bytes.length} bytes; at most ${MAX_FILE_BYTES} are read`);
        text = bytes.toString('utf8');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${path}: ${(err as Error).message}` });
        return z.NEVER;
      }
      const parsed = parseKeyEntries(text, 'WEBHOOK_SECRET_KEYS_FILE');
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: `${path}: ${parsed}` });
        return z.NEVER;
      }
      if (parsed.length === 0) {
        ctx.addIssue({ code: 'custom', message: `${path}: lists no key` });
        return z.NEVER;
      }
      return parsed;
    });

/** The key settings of the parsed config. */
export interface SecretKeyConfig {
  SLUICE_ENV: 'development' | 'test' | 'production';
  WEBHOOK_SECRET_KEYS: SecretKeyEntry[];
  WEBHOOK_SECRET_KEYS_FILE: SecretKeyEntry[];
  WEBHOOK_SECRET_ACTIVE_KEY?: string | undefined;
}

/** One problem with the key settings, for the config's `superRefine`. */
export interface KeyIssue {
  variable: 'WEBHOOK_SECRET_KEYS' | 'WEBHOOK_SECRET_KEYS_FILE' | 'WEBHOOK_SECRET_ACTIVE_KEY';
  message: string;
}

/** The configured keys (both variables), or the development key when neither lists any. */
function entriesOf(c: SecretKeyConfig): SecretKeyEntry[] {
  const listed = [...c.WEBHOOK_SECRET_KEYS, ...c.WEBHOOK_SECRET_KEYS_FILE];
  return listed.length > 0
    ? listed
    : [{ id: DEV_KEY_ID, key: DEV_KEY, variable: '(development default)' }];
}

/** What is wrong with the key settings taken together (each variable was parsed on its own). */
export function checkSecretKeys(c: SecretKeyConfig): KeyIssue[] {
  const issues: KeyIssue[] = [];
  const listed = [...c.WEBHOOK_SECRET_KEYS, ...c.WEBHOOK_SECRET_KEYS_FILE];
  if (listed.length === 0 && c.SLUICE_ENV === 'production')
    issues.push({
      variable: 'WEBHOOK_SECRET_KEYS',
      message:
        'is required in production (or WEBHOOK_SECRET_KEYS_FILE): <keyId>:<base64 of 32 random bytes>, e.g. k1:$(openssl rand -base64 32)',
    });
  for (const e of c.WEBHOOK_SECRET_KEYS_FILE)
    if (c.WEBHOOK_SECRET_KEYS.some((k) => k.id === e.id))
      issues.push({
        variable: 'WEBHOOK_SECRET_KEYS_FILE',
        message: `key id "${e.id}" is also listed in WEBHOOK_SECRET_KEYS`,
      });
  const entries = entriesOf(c);
  const active = c.WEBHOOK_SECRET_ACTIVE_KEY;
  if (active === undefined) {
    if (entries.length > 1)
      issues.push({
        variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
        message: `is required when several keys are configured (${entries.map((e) => e.id).join(', ')})`,
      });
  } else {
    const e = entries.find((k) => k.id === active);
    if (!e)
      issues.push({
        variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
        message: `"${active}" is not listed in WEBHOOK_SECRET_KEYS or WEBHOOK_SECRET_KEYS_FILE (${entries.map((k) => k.id).join(', ')})`,
      });
  }
  const activeEntry = entries.find((k) => k.id === (active ?? entries[0]!.id));
  if (c.SLUICE_ENV === 'production' && listed.length > 0 && activeEntry?.key.equals(DEV_KEY))
    issues.push({
      variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
      message:
        'names the public development key, which production refuses: configure a key of your own',
    });
  return issues;
}

/** The keyring of a config that passed {@link checkSecretKeys}. */
export function secretKeyring(c: SecretKeyConfig): SecretKeyring {
  const entries = entriesOf(c);
  return new SecretKeyring(entries, c.WEBHOOK_SECRET_ACTIVE_KEY ?? entries[0]!.id);
}

/** Whether the secrets are sealed with the public development key (neither variable set). */
export function usesDevelopmentKey(c: SecretKeyConfig): boolean {
  return c.WEBHOOK_SECRET_KEYS.length === 0 && c.WEBHOOK_SECRET_KEYS_FILE.length === 0;
}
