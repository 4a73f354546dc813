// One dead letter as the CLI sees it: the DeadLetter protobuf, the DLQ message's own provenance
// headers and, for telemetry subjects, the decoded EventBatch. Pure functions, no NATS.
import {
  decodeBatch,
  decodeDeadLetter,
  eventDeviceId,
  HEADERS,
  type EventBatch,
  type Topology,
} from '@sluice/contracts';
import { EVENT_DLQ_HEADERS } from '@sluice/sinks-core';

/** A message of the DLQ stream, before decoding. */
export interface RawLetter {
  /** DLQ stream sequence: the address of the dead letter. */
  seq: number;
  /** DLQ subject, `dlq.<service>`. */
  subject: string;
  /** Headers of the DLQ message (multi-valued ones joined by `,`). */
  headers: Record<string, string>;
  data: Uint8Array;
  /** When the DLQ stream stored it. */
  storedAt: Date;
}

/** How a dead letter's payload reads. */
export type LetterContent =
  /** The original subject carries EventBatches (telemetry raw, clean, replay) and the payload is one. */
  | { kind: 'batch'; batch: EventBatch }
  /** The original subject carries EventBatches but the payload is not one (the usual poison). */
  | { kind: 'undecodable-batch'; error: string }
  /** Any other subject (webhook deliveries, ...): no events, no device. */
  | { kind: 'other' };

export interface Letter {
  seq: number;
  subject: string;
  storedAt: Date;
  /** The service that gave up. */
  service: string;
  errorClass: string;
  errorMessage: string;
  deliveryCount: number;
  originalSubject: string;
  originalStream: string;
  originalSequence: number;
  /** `failed_at` of the letter; the DLQ's storage time when the letter has none. */
  failedAt: Date;
  originalHeaders: Record<string, string>;
  /** Headers of the DLQ message itself (`Sluice-Dlq-*`). */
  dlqHeaders: Record<string, string>;
  /** Set for a letter of ONE event of a batch (the payload is a one-event EventBatch). */
  event?: { index: number; id?: string };
  payload: Uint8Array;
  content: LetterContent;
  /** Set when the DLQ message is not a DeadLetter at all; provenance then comes from its headers. */
  unreadable?: string;
}

/** Error class shown for a DLQ message that is not a DeadLetter. */
export const UNREADABLE_CLASS = '(unreadable dead letter)';

function decimal(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/** Reads a DLQ message; never throws (an unreadable one is still listed, with what its headers say). */
export function decodeLetter(raw: RawLetter, topo: Topology): Letter {
  const h = raw.headers;
  const parsedSubject = topo.parse(raw.subject);
  const subjectService = parsedSubject?.kind === 'dlq' ? parsedSubject.service : '?';
  const eventIndex = decimal(h[EVENT_DLQ_HEADERS.EVENT_INDEX]);
  const event =
    eventIndex === undefined
      ? undefined
      : {
          index: eventIndex,
          ...(h[EVENT_DLQ_HEADERS.EVENT_ID] ? { id: h[EVENT_DLQ_HEADERS.EVENT_ID] } : {}),
        };
  const base = {
    seq: raw.seq,
    subject: raw.subject,
    storedAt: raw.storedAt,
    dlqHeaders: h,
    ...(event ? { event } : {}),
  };
  let dl;
  try {
    dl = decodeDeadLetter(raw.data);
  } catch (err) {
    return {
      ...base,
      service: h[HEADERS.DLQ_SERVICE] || subjectService,
      errorClass: UNREADABLE_CLASS,
      errorMessage: (err as Error).message,
      deliveryCount: decimal(h[HEADERS.DLQ_DELIVERY_COUNT]) ?? 0,
      originalSubject: h[HEADERS.DLQ_ORIGINAL_SUBJECT] ?? '',
      originalStream: h[HEADERS.DLQ_ORIGINAL_STREAM] ?? '',
      originalSequence: decimal(h[HEADERS.DLQ_ORIGINAL_SEQUENCE]) ?? 0,
      failedAt: raw.storedAt,
      originalHeaders: {},
      payload: new Uint8Array(0),
      content: { kind: 'other' },
      unreadable: (err as Error).message,
    };
  }
  const payload = new Uint8Array(dl.payload.buffer, dl.payload.byteOffset, dl.payload.byteLength);
  const original = topo.parse(dl.originalSubject);
  let content: LetterContent = { kind: 'other' };
  if (original?.kind === 'raw' || original?.kind === 'clean' || original?.kind === 'replay') {
    try {
      content = { kind: 'batch', batch: decodeBatch(payload) };
    } catch (err) {
      content = { kind: 'undecodable-batch', error: (err as Error).message };
    }
  }
  return {
    ...base,
    service: dl.service || h[HEADERS.DLQ_SERVICE] || subjectService,
    errorClass: dl.errorClass || h[HEADERS.DLQ_ERROR_CLASS] || '?',
    errorMessage: dl.errorMessage,
    deliveryCount: dl.deliveryCount,
    originalSubject: dl.originalSubject,
    originalStream: dl.originalStream,
    originalSequence: dl.originalStreamSequence,
    failedAt: dl.failedAt ?? raw.storedAt,
    originalHeaders: dl.originalHeaders,
    payload,
    content,
  };
}

/** Raw device ids of the letter's events with their event counts; empty for a letter without events. */
export function letterDevices(letter: Letter): Map<string, number> {
  const out = new Map<string, number>();
  if (letter.content.kind !== 'batch') return out;
  for (const e of letter.content.batch.events) {
    if (e.kind === undefined) continue;
    const id = eventDeviceId(e);
    if (id === '') continue;
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

/** The ls/show/redrive/purge filters; each given one narrows, values of one filter are alternatives. */
export interface LetterFilter {
  services?: readonly string[];
  errorClasses?: readonly string[];
  /** Inclusive, on `failedAt`. */
  since?: Date;
  /** Exclusive, on `failedAt`. */
  until?: Date;
  /** Keyed hashes of device ids: a letter matches when one of its events is of such a device. */
  deviceHashes?: readonly string[];
}

/** Whether `letter` passes `filter`; `hash` is the installation's keyed device-id hasher. */
export function matchesFilter(
  letter: Letter,
  filter: LetterFilter,
  hash: (deviceId: string) => string,
): boolean {
  if (filter.services && !filter.services.includes(letter.service)) return false;
  if (filter.errorClasses && !filter.errorClasses.includes(letter.errorClass)) return false;
  const t = letter.failedAt.getTime();
  if (filter.since && t < filter.since.getTime()) return false;
  if (filter.until && t >= filter.until.getTime()) return false;
  if (filter.deviceHashes) {
    const wanted = new Set(filter.deviceHashes);
    let found = false;
    for (const id of letterDevices(letter).keys()) {
      if (wanted.has(hash(id))) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}
