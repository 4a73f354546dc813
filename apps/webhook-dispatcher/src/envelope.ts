// Envelope encryption of the signing secrets at rest (docs/DECISIONS.md #29): each secret is
// encrypted with its own random data key (AES-256-GCM), and the data key is encrypted ("wrapped")
// with a key-encryption key from the environment, whose id is stored beside the ciphertext. Rotating
// the key-encryption key re-wraps the 60-byte data key; the secret's ciphertext never changes.
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { SecretKeyUnknownError, SecretUndecryptableError, type SecretKeyVariable } from './errors';

/** A key id: letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 64. */
export const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Bytes of a key-encryption key and of a data key (AES-256). */
export const KEY_BYTES = 32;

/** One key-encryption key. */
export interface SecretKeyEntry {
  id: string;
  /** 32 bytes. */
  key: Buffer;
  /** Where it was configured, named in errors. */
  variable: SecretKeyVariable;
}

/** What is stored for one secret. */
export interface SealedSecret {
  /** Id of the key-encryption key that wrapped `wrappedKey`. */
  keyId: string;
  /** The data key, encrypted under `keyId`: version, nonce, ciphertext, tag. */
  wrappedKey: Buffer;
  /** The secret, encrypted under the data key: version, nonce, ciphertext, tag. */
  ciphertext: Buffer;
}

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

// Both layers are bound to the subscription (a ciphertext or data key copied to another
// subscription's row does not open there); the wrapped data key also to its key id.
const secretAad = (subscriptionId: string) =>
  Buffer.from(`sluice.webhook-secret.v1\n${subscriptionId}`);
const dataKeyAad = (subscriptionId: string, keyId: string) =>
  Buffer.from(`sluice.webhook-secret-key.v1\n${subscriptionId}\n${keyId}`);

function seal(key: KeyObject | Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, body, c.getAuthTag()]);
}

/** The plaintext, or undefined when `sealed` is not authentic under `key` and `aad`. */
function open(key: KeyObject | Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) return undefined;
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
  const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    return undefined;
  }
}

/** The configured key-encryption keys and the active one: seals, opens and re-wraps secrets. */
export class SecretKeyring {
  private readonly keys = new Map<string, { key: KeyObject; variable: SecretKeyVariable }>();

  constructor(
    entries: readonly SecretKeyEntry[],
    /** Id of the key new secrets are sealed under and older ones re-wrapped to; one of `entries`. */
    readonly activeKeyId: string,
  ) {
    for (const e of entries) {
      if (!KEY_ID.test(e.id)) throw new RangeError(`"${e.id}" is not a key id`);
      if (e.key.length !== KEY_BYTES)
        throw new RangeError(`key "${e.id}" is not ${KEY_BYTES} bytes`);
      if (this.keys.has(e.id)) throw new RangeError(`key id "${e.id}" is given twice`);
      this.keys.set(e.id, { key: createSecretKey(e.key), variable: e.variable });
    }
    if (!this.keys.has(activeKeyId))
      throw new RangeError(`the active key "${activeKeyId}" is not among the keys`);
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /** Where the key under `keyId` was configured; undefined when none is. */
  variableOf(keyId: string): SecretKeyVariable | undefined {
    return this.keys.get(keyId)?.variable;
  }

  /** Encrypts `secret` of `subscriptionId` under a new data key wrapped by the active key. */
  seal(subscriptionId: string, secret: string): SealedSecret {
    const dataKey = randomBytes(KEY_BYTES);
    try {
      return {
        keyId: this.activeKeyId,
        ciphertext: seal(dataKey, Buffer.from(secret, 'utf8'), secretAad(subscriptionId)),
        wrappedKey: this.wrap(subscriptionId, dataKey),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  /** The secret; throws {@link SecretKeyUnknownError} or {@link SecretUndecryptableError}. */
  open(subscriptionId: string, s: SealedSecret): string {
    const dataKey = this.unwrap(subscriptionId, s);
    try {
      const plain = open(dataKey, s.ciphertext, secretAad(subscriptionId));
      if (!plain) throw this.undecryptable(subscriptionId, s.keyId);
      return plain.toString('utf8');
    } finally {
      dataKey.fill(0);
    }
  }

  /**
   * The same secret with its data key wrapped by the active key (the ciphertext is unchanged); throws
   * like {@link open}. The ciphertext is checked too, so a row that could not be opened is never
   * carried over to the new key.
   */
  rewrap(subscriptionId: string, s: SealedSecret): SealedSecret {
    const dataKey = this.unwrap(subscriptionId, s);
    try {
      if (!open(dataKey, s.ciphertext, secretAad(subscriptionId)))
        throw this.undecryptable(subscriptionId, s.keyId);
      return {
        keyId: this.activeKeyId,
        ciphertext: s.ciphertext,
        wrappedKey: this.wrap(subscriptionId, dataKey),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  private wrap(subscriptionId: string, dataKey: Buffer): Buffer {
    const kek = this.keys.get(this.activeKeyId)!.key;
    return seal(kek, dataKey, dataKeyAad(subscriptionId, this.activeKeyId));
  }

  private unwrap(subscriptionId: string, s: SealedSecret): Buffer {
    const kek = this.keys.get(s.keyId);
    if (!kek) throw new SecretKeyUnknownError(s.keyId, subscriptionId);
    const dataKey = open(kek.key, s.wrappedKey, dataKeyAad(subscriptionId, s.keyId));
    if (!dataKey || dataKey.length !== KEY_BYTES) throw this.undecryptable(subscriptionId, s.keyId);
    return dataKey;
  }

  private undecryptable(subscriptionId: string, keyId: string): SecretUndecryptableError {
    return new SecretUndecryptableError(keyId, subscriptionId, this.keys.get(keyId)!.variable);
  }
}
