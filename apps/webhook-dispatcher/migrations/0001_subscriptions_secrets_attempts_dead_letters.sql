-- Subscriptions and their signing secrets, the attempt log and the dead letters.
CREATE TABLE webhook_subscriptions (
  id uuid PRIMARY KEY,
  url text NOT NULL,
  description text NOT NULL DEFAULT '',
  filter jsonb NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  rate_limit_per_s double precision,
  max_concurrency integer,
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE webhook_secrets (
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
  secret text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  PRIMARY KEY (subscription_id, secret)
);
CREATE TABLE webhook_attempts (
  id bigserial PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
  webhook_id text NOT NULL,
  generation integer NOT NULL,
  attempt integer NOT NULL,
  event_type text NOT NULL,
  outcome text NOT NULL,
  status integer,
  latency_ms double precision,
  error text,
  response_body text,
  attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_by_subscription ON webhook_attempts (subscription_id, id DESC);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, generation);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at);
CREATE TABLE webhook_dead_letters (
  webhook_id text PRIMARY KEY,
  subscription_id uuid NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
  event_type text NOT NULL,
  generation integer NOT NULL,
  delivery jsonb NOT NULL,
  attempts integer NOT NULL,
  reason text NOT NULL,
  last_status integer,
  last_error text,
  dead_at timestamptz NOT NULL DEFAULT now(),
  redriven_at timestamptz
);
CREATE INDEX webhook_dead_letters_by_subscription ON webhook_dead_letters (subscription_id, dead_at);
