// Standard Webhooks (https://www.standardwebhooks.com/) secrets and signatures.
import { createHash, createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { InvalidSecretError } from './errors';

const PREFIX = 'whsec_';

/** A new `whsec_<base64 of 32 random bytes>` secret. */
export function generateSecret(): string {
  return PREFIX + randomBytes(32).toString('base64');
}

/** The key bytes of a `whsec_` secret; throws {@link InvalidSecretError}. */
export function secretKey(secret: string): Buffer {
  if (!secret.startsWith(PREFIX)) throw new InvalidSecretError('secret must start with "whsec_"');
  const b64 = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
    throw new InvalidSecretError('secret must be whsec_ followed by base64');
  const key = Buffer.from(b64, 'base64');
  if (key.length < 24 || key.length > 64)
    throw new InvalidSecretError(`secret must encode 24..64 bytes, got ${key.length}`);
  return key;
}

/**
 * `webhook-signature` value: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` per secret,
 * space-separated (several while a secret is being rotated).
 */
export function signatureHeader(
  secrets: readonly string[],
  webhookId: string,
  timestampSec: number,
  body: string,
): string {
  const content = `${webhookId}.${timestampSec}.${body}`;
  let header = '';
  for (const s of secrets)
    header += `${header ? ' ' : ''}v1,${createHmac('sha256', hmacKey(s)).update(content).digest('base64')}`;
  return header;
}

/**
 * Parsed secrets as KeyObjects, bounded. On Node 24 `createHmac` with a Buffer key costs ~40 µs
 * (an internal KeyObject check throws and catches per call) against ~5 µs with a KeyObject, and the
 * same few secrets sign every delivery.
 */
const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_MAX = 10_000;

function hmacKey(secret: string): KeyObject {
  let k = keyCache.get(secret);
  if (!k) {
    k = createSecretKey(secretKey(secret));
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(secret, k);
  }
  return k;
}

/**
 * Deterministic `webhook-id` for one source event and one subscription: the same event matched
 * again (redelivery, restart) yields the same id, so the deliveries stream and receivers dedupe it.
 */
export function webhookId(sourceEventId: string, subscriptionId: string): string {
  const digest = createHash('sha256')
    .update(`${subscriptionId}\n${sourceEventId}`)
    .digest('base64url');
  return `msg_${digest.slice(0, 32)}`;
}
