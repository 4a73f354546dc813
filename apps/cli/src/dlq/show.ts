// `sluice dlq show`: dead letters in full, provenance and decoded payload. Read-only.
import { Event } from '@sluice/contracts';
import { createDeviceHasher } from '@sluice/observability';
import type { CliContext } from '../context';
import { NothingToDoError } from '../errors';
import { printable } from '../table';
import type { Letter } from './letter';
import { selectionOf, parseShow, SHOW_USAGE } from './options';
import { iso, note, printJson, say } from './output';
import { openDlq, selectLetters } from './source';

/** Payload bytes shown (as base64) when they are neither an EventBatch nor text. */
const MAX_BYTES_SHOWN = 4_096;
/** Nesting followed when hiding device ids in a JSON payload. */
const MAX_JSON_DEPTH = 32;

type Hide = (deviceId: string) => string;

/** The payload as shown: events with device ids passed through `hide`, JSON with its device ids hidden. */
export type ShownPayload =
  | { kind: 'event-batch'; batchId: string; events: unknown[] }
  | { kind: 'undecodable-batch'; error: string; bytes: number; base64: string }
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: number; base64: string }
  | { kind: 'empty' };

function base64(payload: Uint8Array): string {
  return Buffer.from(payload.subarray(0, MAX_BYTES_SHOWN)).toString('base64');
}

/** Replaces the values of `device_id`/`deviceId` keys, also inside strings holding JSON objects. */
function hideJsonDevices(value: unknown, hide: Hide, depth = 0): unknown {
  if (depth > MAX_JSON_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => hideJsonDevices(v, hide, depth + 1));
  if (typeof value === 'string' && /^\s*[[{]/.test(value)) {
    try {
      return hideJsonDevices(JSON.parse(value), hide, depth + 1);
    } catch {
      return value;
    }
  }
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      /^device_?id$/i.test(k) && typeof v === 'string'
        ? hide(v)
        : hideJsonDevices(v, hide, depth + 1);
  }
  return out;
}

export function shownPayload(letter: Letter, hide: Hide): ShownPayload {
  const c = letter.content;
  if (c.kind === 'batch') {
    return {
      kind: 'event-batch',
      batchId: c.batch.batchId,
      events: c.batch.events.map((e) => {
        if (e.kind === undefined) return Event.toJSON(e);
        const value = { ...e.kind.value, deviceId: hide(e.kind.value.deviceId) };
        return Event.toJSON({ kind: { ...e.kind, value } as Event['kind'] });
      }),
    };
  }
  const p = letter.payload;
  if (c.kind === 'undecodable-batch') {
    return { kind: 'undecodable-batch', error: c.error, bytes: p.byteLength, base64: base64(p) };
  }
  if (p.byteLength === 0) return { kind: 'empty' };
  let text: string | undefined;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(p);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    try {
      return { kind: 'json', value: hideJsonDevices(JSON.parse(text), hide) };
    } catch {
      return { kind: 'text', text };
    }
  }
  return { kind: 'bytes', bytes: p.byteLength, base64: base64(p) };
}

/** A letter as `--json` prints it. */
export function letterJson(letter: Letter, hide: Hide) {
  return {
    seq: letter.seq,
    subject: letter.subject,
    storedAt: iso(letter.storedAt),
    service: letter.service,
    errorClass: letter.errorClass,
    errorMessage: letter.errorMessage,
    deliveryCount: letter.deliveryCount,
    original: {
      stream: letter.originalStream,
      subject: letter.originalSubject,
      sequence: letter.originalSequence,
    },
    failedAt: iso(letter.failedAt),
    event: letter.event ?? null,
    originalHeaders: letter.originalHeaders,
    dlqHeaders: letter.dlqHeaders,
    payload: shownPayload(letter, hide),
    ...(letter.unreadable !== undefined ? { unreadable: letter.unreadable } : {}),
  };
}

function letterText(letter: Letter, hide: Hide, revealed: boolean): string {
  const p = (s: string, max = 500) => printable(s, max);
  const lines = [
    `dead letter ${letter.seq}  (subject ${p(letter.subject)}, stored ${iso(letter.storedAt)})`,
    `  service          ${p(letter.service)}`,
    `  error            ${p(letter.errorClass)}: ${p(letter.errorMessage, 4_096)}`,
    `  delivery count   ${letter.deliveryCount}`,
    `  original         stream ${p(letter.originalStream) || '-'}, subject ${p(letter.originalSubject) || '-'}, sequence ${letter.originalSequence}`,
    `  failed at        ${iso(letter.failedAt)}`,
  ];
  if (letter.event) {
    lines.push(
      `  event            index ${letter.event.index} of the original batch${letter.event.id ? `, id ${p(letter.event.id)}` : ''}`,
    );
  }
  const headers = Object.entries(letter.originalHeaders);
  lines.push(`  original headers${headers.length === 0 ? '  (none)' : ''}`);
  for (const [k, v] of headers) lines.push(`    ${p(k)}: ${p(v)}`);
  const shown = shownPayload(letter, hide);
  switch (shown.kind) {
    case 'event-batch':
      lines.push(
        `  payload          EventBatch ${p(shown.batchId) || '(no batch id)'}, ${shown.events.length} event${shown.events.length === 1 ? '' : 's'}${revealed ? '' : ' (device ids hashed; --reveal-device shows them)'}`,
      );
      for (const e of shown.events) lines.push(`    ${p(JSON.stringify(e), 10_000)}`);
      break;
    case 'undecodable-batch':
      lines.push(
        `  payload          not an EventBatch (${p(shown.error)}), ${shown.bytes} bytes, base64${shown.bytes > MAX_BYTES_SHOWN ? ` (first ${MAX_BYTES_SHOWN})` : ''}:`,
        `    ${shown.base64}`,
      );
      break;
    case 'json':
      lines.push(`  payload          JSON${revealed ? '' : ' (device ids hashed)'}`);
      for (const l of JSON.stringify(shown.value, null, 2).split('\n')) {
        lines.push(`    ${p(l, 10_000)}`);
      }
      break;
    case 'text':
      lines.push(`  payload          text`);
      for (const l of shown.text.split('\n').slice(0, 200)) lines.push(`    ${p(l, 10_000)}`);
      break;
    case 'bytes':
      lines.push(
        `  payload          ${shown.bytes} bytes, base64${shown.bytes > MAX_BYTES_SHOWN ? ` (first ${MAX_BYTES_SHOWN})` : ''}:`,
        `    ${shown.base64}`,
      );
      break;
    case 'empty':
      lines.push(`  payload          (empty)`);
      break;
  }
  if (letter.unreadable !== undefined) {
    lines.push(`  (the DLQ message is not a DeadLetter: ${p(letter.unreadable)})`);
  }
  return lines.join('\n');
}

export async function runShow(args: string[], ctx: CliContext): Promise<number> {
  const opts = parseShow(args);
  if (opts.help) {
    say(ctx, SHOW_USAGE);
    return 0;
  }
  const hash = createDeviceHasher(ctx.config.DEVICE_ID_HASH_KEY);
  const hide: Hide = opts.revealDevice ? (id) => id : hash;
  const dlq = await openDlq(ctx);
  const shown: Letter[] = [];
  const report = await selectLetters(ctx, dlq, selectionOf(opts.selector, hash), (letter) => {
    if (shown.length < opts.max) shown.push(letter);
  });
  if (report.matched === 0) {
    throw new NothingToDoError(
      dlq.exists
        ? `no dead letter matches (${report.scanned} read from ${dlq.stream})`
        : `the DLQ stream ${dlq.stream} does not exist`,
    );
  }
  if (report.matched > shown.length) {
    note(
      ctx,
      `sluice: ${report.matched} dead letters match, showing the first ${shown.length} (--max)`,
    );
  }
  if (report.truncated) {
    note(ctx, `sluice: read the first ${report.scanned} letters of ${dlq.stream} only (--limit)`);
  }
  if (opts.json) {
    printJson(ctx, {
      stream: dlq.stream,
      matched: report.matched,
      truncated: report.truncated,
      letters: shown.map((l) => letterJson(l, hide)),
    });
    return 0;
  }
  say(ctx, shown.map((l) => letterText(l, hide, opts.revealDevice)).join('\n\n'));
  return 0;
}
