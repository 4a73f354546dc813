import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from '@nats-io/nats-core';

/**
 * What went wrong talking to NATS, from nats.js's typed errors (never from message text):
 * - `timeout`: no answer in time (the publish may still have been stored; resend with the same msg id);
 * - `no_responders`: nobody serves the subject (no stream captures it, or JetStream is down);
 * - `disconnected`: the connection is closed, draining or broken;
 * - `denied`: the account may not publish/subscribe there, or its credentials expired;
 * - `rejected`: JetStream answered with an API error (e.g. a wrong expected stream);
 * - `other`: anything else.
 */
export type NatsFailure =
  'timeout' | 'no_responders' | 'disconnected' | 'denied' | 'rejected' | 'other';

/** Classifies `err` (and its `cause` chain, at most 5 deep) into a {@link NatsFailure}. */
export function classifyNatsError(err: unknown): NatsFailure {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    if (e instanceof TimeoutError) return 'timeout';
    if (e instanceof NoRespondersError) return 'no_responders';
    if (e instanceof RequestError && e.isNoResponders()) return 'no_responders';
    if (
      e instanceof ClosedConnectionError ||
      e instanceof DrainingConnectionError ||
      e instanceof ConnectionError
    )
      return 'disconnected';
    if (
      e instanceof PermissionViolationError ||
      e instanceof AuthorizationError ||
      e instanceof UserAuthenticationExpiredError
    )
      return 'denied';
    if (e instanceof JetStreamApiError) return e.status === 503 ? 'no_responders' : 'rejected';
    if (e instanceof JetStreamError && !(e.cause instanceof Error)) return 'rejected';
    e = e.cause;
  }
  return 'other';
}

/** Whether a later attempt of the same operation can succeed. */
export function isRetriableNatsFailure(f: NatsFailure): boolean {
  return f === 'timeout' || f === 'no_responders' || f === 'disconnected';
}
