import type { JsMsg } from '@nats-io/jetstream';
import { PoisonMessageError } from '@sluice/actor';
import { decodeBatch, eventId, eventRegion, eventTime, NAME_TOKEN_PATTERN, type Event, type Topology } from '@sluice/contracts';

/** A raw message, decoded and reduced to the first occurrence of each event id. */
export interface RawMessage {
  /** Region of the clean subject. */
  region: string;
  /** Events in original order, the first of each event id only. */
  events: Event[];
  /** `eventId` of each of `events`. */
  ids: string[];
  /** Event time (ms since the epoch, 0 when unset) of each of `events`: picks the claim's bucket. */
  times: number[];
  /** Events dropped because their id occurred earlier in the same message. */
  repeatedInMessage: number;
  /** The raw EventBatch bytes, republished (with a new batch_id) when every event is kept. */
  bytes: Uint8Array;
}

/**
 * Decodes a raw EventBatch. Throws (→ the actor dead-letters the message) on bytes that are not an
 * EventBatch (`DecodeError`), an event without a kind or an id, or when no region can be found.
 * The region comes from the subject (`telemetry.raw.<region>`); for a subject outside the topology
 * (e.g. a per-region stream with its own subjects) every event must carry the same valid region.
 */
export function decodeRawMessage(msg: Pick<JsMsg, 'data' | 'subject'>, topology: Topology): RawMessage {
  const batch = decodeBatch(msg.data);
  const events: Event[] = [];
  const ids: string[] = [];
  const times: number[] = [];
  const seen = new Set<string>();
  let repeatedInMessage = 0;
  batch.events.forEach((event, i) => {
    if (event.kind === undefined) throw new PoisonMessageError(`event ${i} has no kind (telemetry or detection)`);
    const id = eventId(event);
    if (id === '') throw new PoisonMessageError(`event ${i} has an empty event_id; dedupe cannot claim it`);
    if (seen.has(id)) {
      repeatedInMessage++;
      return;
    }
    seen.add(id);
    events.push(event);
    ids.push(id);
    times.push(eventTime(event)?.getTime() ?? 0);
  });
  const parsed = topology.parse(msg.subject);
  let region = parsed?.kind === 'raw' ? parsed.region : undefined;
  if (region === undefined) {
    const regions = new Set(events.map(eventRegion));
    const only = regions.size === 1 ? [...regions][0]! : undefined;
    if (only === undefined || !NAME_TOKEN_PATTERN.test(only)) {
      throw new PoisonMessageError(`subject "${msg.subject}" is not a raw subject and the events do not share one valid region`);
    }
    region = only;
  }
  return { region, events, ids, times, repeatedInMessage, bytes: msg.data };
}
