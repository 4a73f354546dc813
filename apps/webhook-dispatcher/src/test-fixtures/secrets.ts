// Key-encryption keys for the tests of the secrets at rest.
import { randomBytes } from 'node:crypto';
import { SecretKeyring, type SecretKeyEntry } from '../envelope';

/** A new random key `id`, as configured through WEBHOOK_SECRET_KEYS. */
export function testKey(id: string): SecretKeyEntry {
  return { id, key: randomBytes(32), variable: 'WEBHOOK_SECRET_KEYS' };
}

/** `<keyId>:<base64>` entries for WEBHOOK_SECRET_KEYS. */
export function keysEnv(...keys: SecretKeyEntry[]): string {
  return keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
}

/** A keyring of one new random key, active. */
export function testKeyring(id = 'test'): SecretKeyring {
  return new SecretKeyring([testKey(id)], id);
}
