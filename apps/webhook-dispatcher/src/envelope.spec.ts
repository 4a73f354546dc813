import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '@sluice/config';
import { config } from './config';
import { SecretKeyring, type SealedSecret } from './envelope';
import { SecretKeyUnknownError, SecretUndecryptableError } from './errors';
import { DEV_KEY, DEV_KEY_ID, secretKeyring } from './secret-keys';
import { generateSecret } from './signing';
import { keysEnv, testKey } from './test-fixtures/secrets';

const SUB = '3f2a0b8e-5d1c-4a7e-9b6f-0c1d2e3f4a5b';
const OTHER_SUB = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

/** `s` with one bit of `field` flipped at `at` (from the end when negative). */
function flip(s: SealedSecret, field: 'wrappedKey' | 'ciphertext', at: number): SealedSecret {
  const b = Buffer.from(s[field]);
  const i = at < 0 ? b.length + at : at;
  b[i] = b[i]! ^ 0x01;
  return { ...s, [field]: b };
}

describe('envelope encryption of the signing secrets', () => {
  const k1 = testKey('k1');
  const ring = new SecretKeyring([k1], 'k1');
  const secret = generateSecret();

  it('round-trips, and keeps neither the secret nor its key bytes in what is stored', () => {
    const s = ring.seal(SUB, secret);
    expect(s.keyId).toBe('k1');
    expect(ring.open(SUB, s)).toBe(secret);
    const keyBytes = Buffer.from(secret.slice('whsec_'.length), 'base64');
    for (const stored of [s.ciphertext, s.wrappedKey]) {
      expect(stored.includes(Buffer.from(secret))).toBe(false);
      expect(stored.includes(keyBytes)).toBe(false);
    }
    // A new data key and nonces every time: the same secret never seals to the same bytes.
    const again = ring.seal(SUB, secret);
    expect(again.ciphertext.equals(s.ciphertext)).toBe(false);
    expect(again.wrappedKey.equals(s.wrappedKey)).toBe(false);
  });

  it('refuses a ciphertext or wrapped key changed anywhere (nonce, body, tag, version)', () => {
    const s = ring.seal(SUB, secret);
    for (const field of ['ciphertext', 'wrappedKey'] as const)
      for (const at of [0, 1, 13, -1, -17]) {
        expect(() => ring.open(SUB, flip(s, field, at))).toThrow(SecretUndecryptableError);
        expect(() => ring.rewrap(SUB, flip(s, field, at))).toThrow(SecretUndecryptableError);
      }
    expect(() => ring.open(SUB, { ...s, ciphertext: s.ciphertext.subarray(0, 20) })).toThrow(
      SecretUndecryptableError,
    );
  });

  it('binds both layers to the subscription: a row copied to another subscription does not open', () => {
    const s = ring.seal(SUB, secret);
    expect(() => ring.open(OTHER_SUB, s)).toThrow(SecretUndecryptableError);
    // Nor does a ciphertext spliced under another subscription's (valid) data key.
    const other = ring.seal(OTHER_SUB, secret);
    expect(() => ring.open(OTHER_SUB, { ...other, ciphertext: s.ciphertext })).toThrow(
      SecretUndecryptableError,
    );
  });

  it('fails with the wrong key under the same id, naming the key and its variable', () => {
    const s = ring.seal(SUB, secret);
    const wrong = new SecretKeyring(
      [{ ...testKey('k1'), variable: 'WEBHOOK_SECRET_KEYS_FILE' }],
      'k1',
    );
    const err = (() => {
      try {
        wrong.open(SUB, s);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SecretUndecryptableError);
    expect(err).toMatchObject({
      keyId: 'k1',
      subscriptionId: SUB,
      variable: 'WEBHOOK_SECRET_KEYS_FILE',
    });
    expect((err as Error).message).toMatch(/key "k1" of WEBHOOK_SECRET_KEYS_FILE does not decrypt/);
  });

  it('fails on a key id that is not configured, naming it', () => {
    const s = ring.seal(SUB, secret);
    const other = new SecretKeyring([testKey('k2')], 'k2');
    expect(() => other.open(SUB, s)).toThrow(SecretKeyUnknownError);
    expect(() => other.open(SUB, s)).toThrow(/under key "k1", which neither WEBHOOK_SECRET_KEYS/);
    // The key id is bound too: relabelling a row with another configured key id does not open it.
    const both = new SecretKeyring([k1, testKey('k2')], 'k2');
    expect(() => both.open(SUB, { ...s, keyId: 'k2' })).toThrow(SecretUndecryptableError);
  });

  it('re-wraps the data key under the active key, leaving the ciphertext as it was', () => {
    const k2 = testKey('k2');
    const s = ring.seal(SUB, secret);
    const rotated = new SecretKeyring([k1, k2], 'k2');
    const r = rotated.rewrap(SUB, s);
    expect(r.keyId).toBe('k2');
    expect(r.ciphertext.equals(s.ciphertext)).toBe(true);
    expect(r.wrappedKey.equals(s.wrappedKey)).toBe(false);
    expect(rotated.open(SUB, r)).toBe(secret);
    expect(new SecretKeyring([k2], 'k2').open(SUB, r)).toBe(secret);
    expect(() => ring.open(SUB, r)).toThrow(SecretKeyUnknownError);
  });
});

describe('secret key configuration', () => {
  const base = { WEBHOOK_ADMIN_TOKEN: 'x'.repeat(16) };
  const k1 = testKey('k1');
  const k2 = testKey('k2');
  const issuesOf = (env: Record<string, string>) => {
    try {
      loadConfig(config, { ...base, ...env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).issues;
    }
    throw new Error('the config was accepted');
  };

  it('refuses to start in production without a key, naming both variables', () => {
    expect(issuesOf({ SLUICE_ENV: 'production', DEVICE_ID_HASH_KEY: 'h'.repeat(16) })).toEqual([
      {
        variable: 'WEBHOOK_SECRET_KEYS',
        reason: expect.stringMatching(/required in production \(or WEBHOOK_SECRET_KEYS_FILE\)/),
      },
    ]);
  });

  it('uses the public development key outside production when no key is set, and refuses it as the active key in production', () => {
    const c = loadConfig(config, base);
    const ring = secretKeyring(c);
    expect([ring.activeKeyId, ring.keyIds]).toEqual([DEV_KEY_ID, [DEV_KEY_ID]]);
    expect(
      issuesOf({
        SLUICE_ENV: 'production',
        DEVICE_ID_HASH_KEY: 'h'.repeat(16),
        WEBHOOK_SECRET_KEYS: `${keysEnv(k1)},dev:${DEV_KEY.toString('base64')}`,
        WEBHOOK_SECRET_ACTIVE_KEY: 'dev',
      }),
    ).toEqual([
      {
        variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
        reason: expect.stringMatching(/public development key/),
      },
    ]);
  });

  it('takes the only key as active, requires a choice among several, and refuses an unlisted one', () => {
    expect(
      secretKeyring(loadConfig(config, { ...base, WEBHOOK_SECRET_KEYS: keysEnv(k1) })).activeKeyId,
    ).toBe('k1');
    expect(issuesOf({ WEBHOOK_SECRET_KEYS: keysEnv(k1, k2) })).toEqual([
      {
        variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
        reason: expect.stringMatching(/several keys are configured \(k1, k2\)/),
      },
    ]);
    expect(issuesOf({ WEBHOOK_SECRET_KEYS: keysEnv(k1), WEBHOOK_SECRET_ACTIVE_KEY: 'k9' })).toEqual(
      [
        {
          variable: 'WEBHOOK_SECRET_ACTIVE_KEY',
          reason: expect.stringMatching(/"k9" is not listed/),
        },
      ],
    );
    const ring = secretKeyring(
      loadConfig(config, {
        ...base,
        WEBHOOK_SECRET_KEYS: keysEnv(k1, k2),
        WEBHOOK_SECRET_ACTIVE_KEY: 'k2',
      }),
    );
    expect([ring.activeKeyId, ring.keyIds]).toEqual(['k2', ['k1', 'k2']]);
  });

  it('names a malformed entry', () => {
    expect(issuesOf({ WEBHOOK_SECRET_KEYS: 'k1' })[0]).toMatchObject({
      variable: 'WEBHOOK_SECRET_KEYS',
      reason: expect.stringMatching(/entry 1 is not <keyId>:<base64 of 32 bytes>/),
    });
    expect(
      issuesOf({ WEBHOOK_SECRET_KEYS: `k1:${Buffer.alloc(16).toString('base64')}` })[0],
    ).toMatchObject({
      variable: 'WEBHOOK_SECRET_KEYS',
      reason: expect.stringMatching(/key "k1" must be base64 of 32 bytes .*got 16 bytes/),
    });
    expect(issuesOf({ WEBHOOK_SECRET_KEYS: `a b:${k1.key.toString('base64')}` })[0]).toMatchObject({
      reason: expect.stringMatching(/key id "a b" must be/),
    });
    expect(issuesOf({ WEBHOOK_SECRET_KEYS: `${keysEnv(k1)},${keysEnv(k1)}` })[0]).toMatchObject({
      reason: 'key id "k1" is listed twice',
    });
  });

  describe('from a file', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'webhook-keys-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('reads entries one per line with comments, combined with the variable', () => {
      const file = join(dir, 'keys');
      writeFileSync(file, `# retired 2026-11\n${keysEnv(k1)}\n\n${keysEnv(k2)}\n`);
      const c = loadConfig(config, {
        ...base,
        WEBHOOK_SECRET_KEYS_FILE: file,
        WEBHOOK_SECRET_KEYS: keysEnv(testKey('k3')),
        WEBHOOK_SECRET_ACTIVE_KEY: 'k2',
      });
      const ring = secretKeyring(c);
      expect(ring.keyIds).toEqual(['k3', 'k1', 'k2']);
      expect(ring.variableOf('k1')).toBe('WEBHOOK_SECRET_KEYS_FILE');
      expect(ring.variableOf('k3')).toBe('WEBHOOK_SECRET_KEYS');
    });

    it('names the file variable when the file is missing, empty or lists a key again', () => {
      expect(issuesOf({ WEBHOOK_SECRET_KEYS_FILE: join(dir, 'nope') })).toEqual([
        { variable: 'WEBHOOK_SECRET_KEYS_FILE', reason: expect.stringMatching(/nope: ENOENT/) },
      ]);
      const empty = join(dir, 'empty');
      writeFileSync(empty, '# nothing yet\n');
      expect(issuesOf({ WEBHOOK_SECRET_KEYS_FILE: empty })).toEqual([
        { variable: 'WEBHOOK_SECRET_KEYS_FILE', reason: `${empty}: lists no key` },
      ]);
      const dup = join(dir, 'dup');
      writeFileSync(dup, keysEnv(k1));
      expect(
        issuesOf({
          WEBHOOK_SECRET_KEYS_FILE: dup,
          WEBHOOK_SECRET_KEYS: keysEnv(k1),
          WEBHOOK_SECRET_ACTIVE_KEY: 'k1',
        }),
      ).toEqual([
        {
          variable: 'WEBHOOK_SECRET_KEYS_FILE',
          reason: 'key id "k1" is also listed in WEBHOOK_SECRET_KEYS',
        },
      ]);
    });
  });
});
