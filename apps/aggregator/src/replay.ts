// What arrives on the aggregator's replay subject: DLQ redrives, batches of a range rebuild, and the
// commit that ends a rebuild. Anything else is malformed and dead-lettered by the actor.
import type { JsMsg } from '@nats-io/jetstream';
import { PoisonMessageError } from '@sluice/actor';
import { z } from '@sluice/config';
import {
  HEADERS,
  NAME_TOKEN_PATTERN,
  parseReplaySource,
  type RebuildCommit,
} from '@sluice/contracts';
import { decodeCleanMessage, type CleanMessage } from './partial';

export type ReplayItem =
  | { kind: 'redrive'; msg: CleanMessage }
  | { kind: 'rebuild'; rebuild: string; msg: CleanMessage }
  | { kind: 'commit'; commit: RebuildCommit };

const MAX_RANGE_MS = 5 * 366 * 86_400_000;

const commitSchema = z
  .object({
    rebuild: z.string().regex(NAME_TOKEN_PATTERN),
    from: z.number().int(),
    to: z.number().int(),
    regions: z.array(z.string().regex(NAME_TOKEN_PATTERN)).max(10_000).nullable(),
    messages: z.number().int().min(1),
  })
  .strict()
  .refine(
    (c) => c.from < c.to && c.to - c.from <= MAX_RANGE_MS,
    'from must be before to, at most 5 years apart',
  );

export function decodeReplay(msg: JsMsg): ReplayItem {
  const control = msg.headers?.get(HEADERS.REPLAY_CONTROL);
  if (control) {
    if (control !== 'commit')
      throw new PoisonMessageError(
        `unknown replay control ${JSON.stringify(control.slice(0, 40))}`,
      );
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(msg.data).toString('utf8'));
    } catch (err) {
      throw new PoisonMessageError('rebuild commit is not JSON', { cause: err });
    }
    const r = commitSchema.safeParse(body);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new PoisonMessageError(`rebuild commit: ${i.path.join('.') || '(body)'}: ${i.message}`);
    }
    return { kind: 'commit', commit: r.data };
  }
  const clean = decodeCleanMessage(msg);
  let source;
  try {
    source = parseReplaySource(
      (name) => msg.headers?.get(name) || undefined,
      clean.readings.length + clean.detections + clean.invalid,
    );
  } catch (err) {
    throw new PoisonMessageError((err as Error).message, { cause: err });
  }
  if (!source)
    throw new PoisonMessageError(`replayed batch has no ${HEADERS.SOURCE_STREAM} header`);
  if (source.rebuild !== undefined) {
    if (!NAME_TOKEN_PATTERN.test(source.rebuild))
      throw new PoisonMessageError(`${HEADERS.REPLAY_REBUILD} must be a name token`);
    return { kind: 'rebuild', rebuild: source.rebuild, msg: clean };
  }
  // A redrive merges like the original clean message would have, under the id that message had.
  return { kind: 'redrive', msg: { ...clean, id: `${source.stream}:${source.seq}` } };
}
