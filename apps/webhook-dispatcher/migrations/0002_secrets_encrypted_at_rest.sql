-- Signing secrets encrypted at rest (docs/DECISIONS.md #29): each secret sealed with its own data key
-- (AES-256-GCM), the data key wrapped by the key-encryption key `key_id` of WEBHOOK_SECRET_KEYS.
-- `secret` holds the plaintext only of rows written before this migration, until the dispatcher
-- encrypts them at its next start (it then empties the column); new rows are never plaintext.
ALTER TABLE webhook_secrets DROP CONSTRAINT webhook_secrets_pkey;
ALTER TABLE webhook_secrets ADD COLUMN id bigserial PRIMARY KEY;
ALTER TABLE webhook_secrets ALTER COLUMN secret DROP NOT NULL;
ALTER TABLE webhook_secrets
  ADD COLUMN key_id text,
  ADD COLUMN wrapped_key bytea,
  ADD COLUMN ciphertext bytea,
  ADD CONSTRAINT webhook_secrets_sealed_or_plaintext CHECK (
    (secret IS NULL AND key_id IS NOT NULL AND wrapped_key IS NOT NULL AND ciphertext IS NOT NULL)
    OR (secret IS NOT NULL AND key_id IS NULL AND wrapped_key IS NULL AND ciphertext IS NULL)
  );
CREATE INDEX webhook_secrets_by_subscription ON webhook_secrets (subscription_id);
