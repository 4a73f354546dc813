// Where a dead letter goes back to, and with which headers: decided for every selected letter before
// anything is sent. Pure: the redrive command only publishes what these plans say.
import { assertNameToken, CONTENT_TYPES, HEADERS, type Topology } from '@sluice/contracts';
import type { Letter } from './letter';
import { isReplayService } from './options';

/** One letter's copy: published to `subject`, then the letter is deleted from the DLQ. */
export interface RedrivePlan {
  seq: number;
  service: string;
  /** `replay`: the service's replay subject; `original`: the subject the message first came on. */
  route: 'replay' | 'original';
  subject: string;
  /** Stream the copy must be stored in; the publish fails rather than land elsewhere. */
  expectStream?: string;
  /** `redrive:<DLQ stream>:<DLQ seq>`: a repeated redrive inside the duplicate window is dropped. */
  msgId: string;
  contentType: string;
  /** Further headers (besides `Nats-Msg-Id` and `content-type`). */
  headers: Record<string, string>;
  payload: Uint8Array;
  /** Events in the payload; `null` when it is not an EventBatch. */
  events: number | null;
}

/** A letter that cannot go back to its service alone, and why. */
export interface Refusal {
  seq: number;
  service: string;
  reason: string;
}

export type PlanResult = { ok: true; plan: RedrivePlan } | ({ ok: false } & Refusal);

export interface PlanContext {
  topology: Topology;
  /** Name of the DLQ stream the letters are in. */
  dlqStream: string;
  /** Id of this redrive run (`Sluice-Replay-Id` of replayed copies). */
  runId: string;
  /** Services fed through `replay.<service>.<region>` (exact names or `prefix*`). */
  replayServices: readonly string[];
}

export function redriveMsgId(dlqStream: string, seq: number): string {
  return `redrive:${dlqStream}:${seq}`;
}

function header(headers: Record<string, string>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/**
 * The position of the letter's event in the clean batch it came from: its index in the batch it was
 * dead-lettered from, mapped through that batch's own `Sluice-Source-Indexes` when it was a replay.
 */
function sourceIndexes(letter: Letter): string | undefined {
  const inherited = header(letter.originalHeaders, HEADERS.SOURCE_INDEXES);
  if (letter.event === undefined) return inherited;
  if (inherited === undefined) return String(letter.event.index);
  return inherited.split(',')[letter.event.index]?.trim();
}

export function planRedrive(letter: Letter, c: PlanContext): PlanResult {
  const refuse = (reason: string): PlanResult => ({
    ok: false,
    seq: letter.seq,
    service: letter.service,
    reason,
  });
  if (letter.unreadable !== undefined) {
    return refuse(`the DLQ message is not a DeadLetter (${letter.unreadable})`);
  }
  if (!letter.originalSubject) return refuse('the letter names no original subject');
  const base = {
    seq: letter.seq,
    service: letter.service,
    msgId: redriveMsgId(c.dlqStream, letter.seq),
    payload: letter.payload,
    events: letter.content.kind === 'batch' ? letter.content.batch.events.length : null,
  };
  const original = c.topology.parse(letter.originalSubject);
  const redriveOf = `${c.dlqStream}:${letter.seq}`;

  if (isReplayService(letter.service, c.replayServices)) {
    try {
      assertNameToken(letter.service, 'target');
    } catch (err) {
      return refuse(`service name cannot be a replay target: ${(err as Error).message}`);
    }
    if (original?.kind !== 'clean' && original?.kind !== 'replay') {
      return refuse(
        original?.kind === 'raw'
          ? `it came from raw subject ${letter.originalSubject}: a replay copy would skip dedupe`
          : `its original subject ${letter.originalSubject} is not a clean or replay subject of ` +
              `namespace "${c.topology.namespace}", so it has no region to replay into`,
      );
    }
    if (letter.content.kind !== 'batch') {
      return refuse(
        `its payload is not an EventBatch (${letter.content.kind === 'undecodable-batch' ? letter.content.error : 'unknown content'}); the replay subject carries EventBatches only`,
      );
    }
    const oh = letter.originalHeaders;
    // A letter of a replayed batch keeps the provenance of the clean batch it was replayed from.
    const headers: Record<string, string> = {
      [HEADERS.SOURCE_STREAM]: header(oh, HEADERS.SOURCE_STREAM) ?? letter.originalStream,
      [HEADERS.SOURCE_SEQUENCE]:
        header(oh, HEADERS.SOURCE_SEQUENCE) ?? String(letter.originalSequence),
      [HEADERS.SOURCE_SUBJECT]: header(oh, HEADERS.SOURCE_SUBJECT) ?? letter.originalSubject,
      [HEADERS.REDRIVE_OF]: redriveOf,
      [HEADERS.REPLAY_ID]: c.runId,
    };
    const sourceTime = header(oh, HEADERS.SOURCE_TIME);
    if (sourceTime !== undefined) headers[HEADERS.SOURCE_TIME] = sourceTime;
    const indexes = sourceIndexes(letter);
    if (indexes !== undefined) headers[HEADERS.SOURCE_INDEXES] = indexes;
    for (const name of [HEADERS.TRACEPARENT, HEADERS.TRACESTATE]) {
      const v = header(oh, name);
      if (v !== undefined) headers[name] = v;
    }
    return {
      ok: true,
      plan: {
        ...base,
        route: 'replay',
        subject: c.topology.replay(letter.service, original.region),
        expectStream: c.topology.streams.replay.name,
        contentType: CONTENT_TYPES.EVENT_BATCH,
        headers,
      },
    };
  }

  const ns = c.topology.namespace;
  if (ns !== '' && !letter.originalSubject.startsWith(`${ns}.`)) {
    return refuse(
      `its original subject ${letter.originalSubject} is outside namespace "${ns}" (another installation's)`,
    );
  }
  switch (original?.kind) {
    case 'clean':
    case 'rollup':
      return refuse(
        `its original subject ${letter.originalSubject} is read by every ${original.kind} consumer: ` +
          `re-publishing there would process it again everywhere (if ${letter.service} reads ` +
          `replay.${letter.service}.<region>, add it to --replay-services)`,
      );
    case 'dlq':
      return refuse(`its original subject ${letter.originalSubject} is a DLQ subject`);
    case 'replay':
      if (original.target !== letter.service) {
        return refuse(
          `its original subject ${letter.originalSubject} is the replay subject of ${original.target}, not of ${letter.service}`,
        );
      }
      break;
    default:
      break;
  }
  const headers: Record<string, string> = {};
  let contentType: string | undefined;
  for (const [k, v] of Object.entries(letter.originalHeaders)) {
    if (/^nats-/i.test(k)) continue;
    if (k.toLowerCase() === HEADERS.CONTENT_TYPE.toLowerCase()) {
      contentType = v;
      continue;
    }
    headers[k] = v;
  }
  headers[HEADERS.REDRIVE_OF] = redriveOf;
  return {
    ok: true,
    plan: {
      ...base,
      route: 'original',
      subject: letter.originalSubject,
      ...(letter.originalStream ? { expectStream: letter.originalStream } : {}),
      contentType:
        contentType ??
        (original?.kind === 'raw' ? CONTENT_TYPES.EVENT_BATCH : 'application/octet-stream'),
      headers,
    },
  };
}
