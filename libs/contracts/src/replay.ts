// The provenance a replayed (or re-driven) batch carries in its headers, parsed strictly: a consumer
// stores replayed events exactly as it stored them the first time, so a malformed value is refused,
// never guessed.
import { SluiceError } from '@sluice/errors';
import { HEADERS } from './subjects';

/** Where the events of a replayed batch were first stored. */
export interface ReplaySource {
  /** Clean stream of the original batch. */
  stream: string;
  /** Its stream sequence. */
  seq: number;
  /** Its subject. */
  subject: string;
  /** When JetStream stored it, epoch ms; undefined when not carried (a re-driven dead letter). */
  storedAt: number | undefined;
  /** Position of each event in the original batch, in event order; undefined: 0, 1, 2, ... */
  indexes: number[] | undefined;
  /** Replay run (`Sluice-Replay-Id`), if any. */
  replayId: string | undefined;
  /** Range rebuild the batch belongs to (`Sluice-Replay-Rebuild`), if any. */
  rebuild: string | undefined;
  /** `<stream>:<seq>` of the dead letter it was re-driven from, if any. */
  redriveOf: string | undefined;
}

/** A replayed batch whose `Sluice-Source-*` headers are missing or malformed. */
export class ReplayHeaderError extends SluiceError {
  override readonly name = 'ReplayHeaderError';
  readonly code = 'replay_header_invalid';
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const MAX_TEXT = 1024;

/**
 * The replay provenance of a message from its headers (`get` returns a header's value), or undefined
 * when it carries none (`Sluice-Source-Stream` absent). `events` is the batch's event count, which
 * `Sluice-Source-Indexes` must match. Throws {@link ReplayHeaderError}.
 */
export function parseReplaySource(
  get: (name: string) => string | undefined,
  events: number,
): ReplaySource | undefined {
  const stream = get(HEADERS.SOURCE_STREAM);
  if (stream === undefined || stream === '') return undefined;
  const text = (name: string, value: string | undefined, required: boolean): string | undefined => {
    if (value === undefined || value === '') {
      if (required) throw new ReplayHeaderError(`replayed batch has no ${name} header`);
      return undefined;
    }
    if (value.length > MAX_TEXT || /[\p{Cc}]/u.test(value))
      throw new ReplayHeaderError(`${name} must be at most ${MAX_TEXT} printable characters`);
    return value;
  };
  const decimal = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined || value === '') return undefined;
    if (!DECIMAL.test(value))
      throw new ReplayHeaderError(
        `${name} must be a decimal number, got ${JSON.stringify(value.slice(0, 40))}`,
      );
    return Number(value);
  };
  text(HEADERS.SOURCE_STREAM, stream, true);
  const seq = decimal(HEADERS.SOURCE_SEQUENCE, get(HEADERS.SOURCE_SEQUENCE));
  if (seq === undefined || seq < 1)
    throw new ReplayHeaderError(`replayed batch needs a ${HEADERS.SOURCE_SEQUENCE} of at least 1`);
  const subject = text(HEADERS.SOURCE_SUBJECT, get(HEADERS.SOURCE_SUBJECT), true)!;
  const storedAt = decimal(HEADERS.SOURCE_TIME, get(HEADERS.SOURCE_TIME));
  let indexes: number[] | undefined;
  const rawIndexes = get(HEADERS.SOURCE_INDEXES);
  if (rawIndexes !== undefined && rawIndexes !== '') {
    const parts = rawIndexes.split(',');
    if (parts.length !== events)
      throw new ReplayHeaderError(
        `${HEADERS.SOURCE_INDEXES} lists ${parts.length} positions for ${events} events`,
      );
    indexes = parts.map((p) => {
      const n = decimal(HEADERS.SOURCE_INDEXES, p.trim());
      if (n === undefined || n > 0xffffffff)
        throw new ReplayHeaderError(
          `${HEADERS.SOURCE_INDEXES} has an empty or out-of-range position`,
        );
      return n;
    });
  }
  return {
    stream,
    seq,
    subject,
    storedAt,
    indexes,
    replayId: text(HEADERS.REPLAY_ID, get(HEADERS.REPLAY_ID), false),
    rebuild: text(HEADERS.REPLAY_REBUILD, get(HEADERS.REPLAY_REBUILD), false),
    redriveOf: text(HEADERS.REDRIVE_OF, get(HEADERS.REDRIVE_OF), false),
  };
}

/**
 * How a replay target takes replayed batches: `store` writes them like clean ones (idempotent by
 * event id: MongoDB, exporters); `rebuild` stages them and replaces a range on a commit (aggregator).
 */
export type ReplayMode = 'store' | 'rebuild';

const DESCRIPTION = /^sluice-replay mode=(store|rebuild)$/;

/** The description a replay consumer carries, so `sluice replay` knows how to drive its target. */
export function replayConsumerDescription(mode: ReplayMode): string {
  return `sluice-replay mode=${mode}`;
}

/** The mode a replay consumer's description declares; undefined for any other consumer. */
export function replayModeOf(description: string | undefined): ReplayMode | undefined {
  const m = description ? DESCRIPTION.exec(description) : null;
  return m ? (m[1] as ReplayMode) : undefined;
}

/** The body of a `commit` control message that ends a range rebuild (JSON). */
export interface RebuildCommit {
  /** Rebuild id (the replay id), as in `Sluice-Replay-Rebuild`. */
  rebuild: string;
  /** Event-time range, epoch ms, `[from, to)`: windows wholly inside it are replaced. */
  from: number;
  to: number;
  /** Regions rebuilt; null for every region. */
  regions: string[] | null;
  /** Distinct replayed batches (`Nats-Msg-Id`s) the rebuild consists of. */
  messages: number;
}

/** What a consumer announces on `replayStatus(id)` when a rebuild committed (or failed for good). */
export interface RebuildStatus {
  rebuild: string;
  state: 'committed' | 'failed';
  /** Roll-up rows written (new or changed), unchanged, and removed (no event of the archive in them). */
  written?: number;
  unchanged?: number;
  removed?: number;
  error?: string;
}
