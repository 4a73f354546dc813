// The only place NATS subject, stream and header names are spelled. Everything else builds them
// through these functions and constants.
import { SluiceError } from '@sluice/errors';
import { protobufPackage as opsPackage } from './gen/sluice/ops/v1/dead_letter';
import { protobufPackage as telemetryPackage } from './gen/sluice/telemetry/v1/telemetry';

/**
 * Pattern every region and resolution token must match: lowercase letters, digits, `_` and `-`,
 * starting with a letter or digit, 1..64 characters. Also what the wire parser accepts as `region`.
 */
export const NAME_TOKEN_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** What a subject token is used as; named in error messages. */
export type SubjectTokenRole = 'region' | 'resolution' | 'service' | 'target' | 'token';

/** A value that cannot be used as one token of a NATS subject. */
export class InvalidSubjectTokenError extends SluiceError {
  override readonly name = 'InvalidSubjectTokenError';
  readonly code = 'subject_token_invalid';

  constructor(
    /** The rejected value, as given. */
    readonly token: unknown,
    readonly role: SubjectTokenRole,
    /** Why it was rejected, for example `must not contain "."`. */
    readonly reason: string,
  ) {
    super(`invalid ${role} ${JSON.stringify(token) ?? String(token)}: ${reason}`, {
      httpStatus: 400,
    });
  }
}

/**
 * Throws {@link InvalidSubjectTokenError} unless `token` is usable as exactly one subject token:
 * a non-empty string without `.` (the token separator), the wildcards `*` and `>`, whitespace or
 * control characters.
 */
export function assertSubjectToken(
  token: unknown,
  role: SubjectTokenRole = 'token',
): asserts token is string {
  if (typeof token !== 'string') {
    throw new InvalidSubjectTokenError(token, role, `must be a string, got ${typeof token}`);
  }
  if (token === '') throw new InvalidSubjectTokenError(token, role, 'must not be empty');
  if (token.includes('.')) {
    throw new InvalidSubjectTokenError(
      token,
      role,
      'must not contain "." (it separates subject tokens)',
    );
  }
  for (const wildcard of ['*', '>']) {
    if (token.includes(wildcard)) {
      throw new InvalidSubjectTokenError(
        token,
        role,
        `must not contain the wildcard "${wildcard}"`,
      );
    }
  }
  if (/[\s\p{Cc}]/u.test(token)) {
    throw new InvalidSubjectTokenError(
      token,
      role,
      'must not contain whitespace or control characters',
    );
  }
}

/** {@link assertSubjectToken}, then {@link NAME_TOKEN_PATTERN}. */
export function assertNameToken(
  token: unknown,
  role: SubjectTokenRole = 'token',
): asserts token is string {
  assertSubjectToken(token, role);
  if (!NAME_TOKEN_PATTERN.test(token)) {
    throw new InvalidSubjectTokenError(
      token,
      role,
      `must match ${String(NAME_TOKEN_PATTERN)} (lowercase letters, digits, "_" and "-", at most 64)`,
    );
  }
}

const RAW_PREFIX = 'telemetry.raw';
const CLEAN_PREFIX = 'telemetry.clean';
const ROLLUP_PREFIX = 'telemetry.rollup';
const DLQ_PREFIX = 'dlq';
const REPLAY_PREFIX = 'replay';

/** Filters matching every subject of one family. */
export const SUBJECT_FILTERS = {
  /** Every raw subject, `telemetry.raw.<region>`. */
  RAW_ALL: `${RAW_PREFIX}.>`,
  /** Every clean subject, `telemetry.clean.<region>`. */
  CLEAN_ALL: `${CLEAN_PREFIX}.>`,
  /** Every roll-up subject, `telemetry.rollup.<resolution>.<region>`. */
  ROLLUP_ALL: `${ROLLUP_PREFIX}.>`,
  /** Every dead-letter subject, `dlq.<service>`. */
  DLQ_ALL: `${DLQ_PREFIX}.>`,
  /** Every replay subject, `replay.<target>.<region>`. */
  REPLAY_ALL: `${REPLAY_PREFIX}.>`,
} as const;

/** A JetStream stream: its name and the subjects it captures. */
export interface StreamSpec {
  readonly name: string;
  readonly subjects: readonly string[];
  /**
   * Server placement tags (e.g. `region:eu-west`): the stream's replicas go only to servers carrying
   * every tag. Set on the regional streams of a regional deployment (`topology(ns, { region })`);
   * absent otherwise (the stream goes wherever NATS puts it).
   */
  readonly placementTags?: readonly string[];
}

/** The streams of the pipeline (see docs/CONTRACTS.md for what each carries). */
export const STREAMS = {
  /** Device batches as accepted by the gateway (EventBatch), before dedupe. */
  TELEMETRY_RAW: { name: 'TELEMETRY_RAW', subjects: [SUBJECT_FILTERS.RAW_ALL] },
  /** Deduplicated batches (EventBatch). */
  TELEMETRY: { name: 'TELEMETRY', subjects: [SUBJECT_FILTERS.CLEAN_ALL] },
  /** Closed and revised windows (Rollup). */
  ROLLUPS: { name: 'ROLLUPS', subjects: [SUBJECT_FILTERS.ROLLUP_ALL] },
  /** Dead letters of every service (DeadLetter). */
  DLQ: { name: 'DLQ', subjects: [SUBJECT_FILTERS.DLQ_ALL] },
  /**
   * Events re-published from the archive (or re-driven from the DLQ) for one consumer: clean
   * batches (EventBatch) carrying their original provenance in `Sluice-Source-*` headers.
   */
  REPLAY: { name: 'REPLAY', subjects: [SUBJECT_FILTERS.REPLAY_ALL] },
} as const satisfies Record<string, StreamSpec>;

/** `telemetry.raw.<region>`. Throws {@link InvalidSubjectTokenError}. */
export function rawSubject(region: string): string {
  assertNameToken(region, 'region');
  return `${RAW_PREFIX}.${region}`;
}

/** `telemetry.clean.<region>`. Throws {@link InvalidSubjectTokenError}. */
export function cleanSubject(region: string): string {
  assertNameToken(region, 'region');
  return `${CLEAN_PREFIX}.${region}`;
}

/** `telemetry.rollup.<resolution>.<region>`. Throws {@link InvalidSubjectTokenError}. */
export function rollupSubject(resolution: string, region: string): string {
  assertNameToken(resolution, 'resolution');
  assertNameToken(region, 'region');
  return `${ROLLUP_PREFIX}.${resolution}.${region}`;
}

/** `dlq.<service>`. Throws {@link InvalidSubjectTokenError}. */
export function dlqSubject(service: string): string {
  assertSubjectToken(service, 'service');
  return `${DLQ_PREFIX}.${service}`;
}

/**
 * `replay.<target>.<region>`: clean batches for one consumer only (`target` is its service name, e.g.
 * `mongo-capture` or `aggregator`). Throws {@link InvalidSubjectTokenError}.
 */
export function replaySubject(target: string, region: string): string {
  assertNameToken(target, 'target');
  assertNameToken(region, 'region');
  return `${REPLAY_PREFIX}.${target}.${region}`;
}

/** Every replay subject of one target, `replay.<target>.>`. Throws {@link InvalidSubjectTokenError}. */
export function replayFilter(target: string): string {
  assertNameToken(target, 'target');
  return `${REPLAY_PREFIX}.${target}.>`;
}

/** Every replay subject of one region, `replay.*.<region>`. Throws {@link InvalidSubjectTokenError}. */
export function replayRegionFilter(region: string): string {
  assertNameToken(region, 'region');
  return `${REPLAY_PREFIX}.*.${region}`;
}

/**
 * `sluice.replay-status.<replay id>`: core NATS (not stored), where a consumer announces what a replay
 * did (the aggregator, when a rebuild commits) to the `sluice replay` waiting for it.
 */
export function replayStatusSubject(replayId: string): string {
  assertNameToken(replayId, 'token');
  return `sluice.replay-status.${replayId}`;
}

/**
 * Roll-up filter narrowed to one resolution and/or one region; an omitted part is `*`.
 * Throws {@link InvalidSubjectTokenError}.
 */
export function rollupFilter(filter: { resolution?: string; region?: string } = {}): string {
  const { resolution, region } = filter;
  if (resolution !== undefined) assertNameToken(resolution, 'resolution');
  if (region !== undefined) assertNameToken(region, 'region');
  return `${ROLLUP_PREFIX}.${resolution ?? '*'}.${region ?? '*'}`;
}

/** A concrete subject taken apart; see {@link parseSubject}. */
export type ParsedSubject =
  | { kind: 'raw'; region: string }
  | { kind: 'clean'; region: string }
  | { kind: 'rollup'; resolution: string; region: string }
  | { kind: 'dlq'; service: string }
  | { kind: 'replay'; target: string; region: string };

/** Inverse of the builders; `undefined` for a subject none of them could have produced. */
export function parseSubject(subject: string): ParsedSubject | undefined {
  const tokens = subject.split('.');
  const name = (token: string | undefined): token is string =>
    token !== undefined && NAME_TOKEN_PATTERN.test(token);
  const [a, b, c, d] = tokens;
  if (a === 'telemetry' && tokens.length === 3 && name(c)) {
    if (b === 'raw') return { kind: 'raw', region: c };
    if (b === 'clean') return { kind: 'clean', region: c };
  }
  if (a === 'telemetry' && b === 'rollup' && tokens.length === 4 && name(c) && name(d)) {
    return { kind: 'rollup', resolution: c, region: d };
  }
  if (a === REPLAY_PREFIX && tokens.length === 3 && name(b) && name(c)) {
    return { kind: 'replay', target: b, region: c };
  }
  if (a === DLQ_PREFIX && tokens.length === 2 && b !== undefined) {
    try {
      assertSubjectToken(b, 'service');
      return { kind: 'dlq', service: b };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Message header names. */
export const HEADERS = {
  /** JetStream de-duplication id. */
  MSG_ID: 'Nats-Msg-Id',
  /**
   * Raw batches: hex sha256 of the request content the gateway stored under a client-chosen batch id
   * (gRPC EventBatch bytes, HTTP body with an `Idempotency-Key`), to tell a resend from a reuse.
   */
  CONTENT_DIGEST: 'Sluice-Content-Digest',
  /** One of {@link CONTENT_TYPES}. */
  CONTENT_TYPE: 'content-type',
  /** W3C trace context. */
  TRACEPARENT: 'traceparent',
  TRACESTATE: 'tracestate',
  /** Dead-letter provenance: the service that gave up. */
  DLQ_SERVICE: 'Sluice-Dlq-Service',
  /** Dead-letter provenance: error class name, for example `DecodeError`. */
  DLQ_ERROR_CLASS: 'Sluice-Dlq-Error-Class',
  /** Dead-letter provenance: error message. */
  DLQ_ERROR: 'Sluice-Dlq-Error',
  /** Dead-letter provenance: delivery count of the original message (decimal). */
  DLQ_DELIVERY_COUNT: 'Sluice-Dlq-Delivery-Count',
  /** Dead-letter provenance: original subject. */
  DLQ_ORIGINAL_SUBJECT: 'Sluice-Dlq-Original-Subject',
  /** Dead-letter provenance: original stream name. */
  DLQ_ORIGINAL_STREAM: 'Sluice-Dlq-Original-Stream',
  /** Dead-letter provenance: original stream sequence (decimal). */
  DLQ_ORIGINAL_SEQUENCE: 'Sluice-Dlq-Original-Sequence',
  /** Replayed batches: id of the replay run (`sluice replay`), for logs and the aggregator's rebuild. */
  REPLAY_ID: 'Sluice-Replay-Id',
  /**
   * Replayed batches for the aggregator: id of the range rebuild they belong to. Without it a batch on
   * the aggregator's replay subject is merged into the live roll-ups (a DLQ redrive), idempotent by
   * its `Sluice-Source-Stream` and `Sluice-Source-Sequence`.
   */
  REPLAY_REBUILD: 'Sluice-Replay-Rebuild',
  /** Replayed batches re-driven from the DLQ: `<DLQ stream>:<DLQ sequence>` of the dead letter. */
  REDRIVE_OF: 'Sluice-Redrive-Of',
  /** Replay control messages (no events): `commit` ends a rebuild in the aggregator. */
  REPLAY_CONTROL: 'Sluice-Replay-Control',
  /** Replayed batches: the clean stream the original batch was stored in. */
  SOURCE_STREAM: 'Sluice-Source-Stream',
  /** Replayed batches: the original clean batch's stream sequence (decimal). */
  SOURCE_SEQUENCE: 'Sluice-Source-Sequence',
  /** Replayed batches: the original clean batch's subject. */
  SOURCE_SUBJECT: 'Sluice-Source-Subject',
  /** Replayed batches: when JetStream stored the original batch (epoch ms, decimal). */
  SOURCE_TIME: 'Sluice-Source-Time',
  /**
   * Replayed batches: each event's position in the original batch, comma-separated decimals in event
   * order (a filtered replay carries a subset of the batch).
   */
  SOURCE_INDEXES: 'Sluice-Source-Indexes',
} as const;

const PROTOBUF = 'application/x-protobuf';

/** `content-type` header values, one per message type carried on a stream. */
export const CONTENT_TYPES = {
  /** sluice.telemetry.v1.EventBatch, on TELEMETRY_RAW and TELEMETRY. */
  EVENT_BATCH: `${PROTOBUF}; proto=${telemetryPackage}.EventBatch`,
  /** sluice.telemetry.v1.Rollup, on ROLLUPS. */
  ROLLUP: `${PROTOBUF}; proto=${telemetryPackage}.Rollup`,
  /** sluice.ops.v1.DeadLetter, on DLQ. */
  DEAD_LETTER: `${PROTOBUF}; proto=${opsPackage}.DeadLetter`,
  /** Replay control messages (`Sluice-Replay-Control`), a JSON object. */
  REPLAY_CONTROL: 'application/json; sluice=replay-control',
  /** JSON wire events (schema versions 1 and 2) on the gateway's HTTP API. */
  WIRE_JSON: 'application/json',
} as const;
