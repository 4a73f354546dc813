// `sluice dlq redrive`: re-publishes selected dead letters to where only the service that gave up
// processes them again, waits for JetStream's ack, then deletes each letter from the DLQ.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { ensureStream, publishDurable } from '@sluice/jetstream';
import { createDeviceHasher } from '@sluice/observability';
import type { CliContext } from '../context';
import { NothingToDoError } from '../errors';
import { printable, renderTable } from '../table';
import { RedriveFailedError, RedriveRefusedError } from './errors';
import { decodeLetter } from './letter';
import { selectionOf, parseRedrive, REDRIVE_USAGE } from './options';
import { iso, note, printJson, say } from './output';
import { planRedrive, type PlanContext, type RedrivePlan, type Refusal } from './plan';
import { getLetter, openDlq, selectLetters, type Dlq } from './source';

/** Refusals and dry-run rows kept to print. */
const MAX_LISTED = 1_000;
/** A progress line at most this often. */
const PROGRESS_EVERY_MS = 2_000;

/** What a redrive did. */
export interface RedriveSummary {
  runId: string;
  stream: string;
  selected: number;
  /** Copies stored by JetStream for the first time. */
  sent: number;
  /** Copies JetStream already had (an earlier redrive of the same letter inside the duplicate window). */
  duplicate: number;
  /** Letters deleted from the DLQ. */
  deleted: number;
  /** Letters gone from the DLQ between selection and sending (purged or redriven meanwhile). */
  gone: number;
  /** Selected letters that cannot go back to their service alone (left in the DLQ, --skip-refused). */
  refused: number;
  interrupted: boolean;
  truncated: boolean;
}

function isNoMessage(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound;
}

function planRow(p: RedrivePlan, errorClass: string): string[] {
  return [
    String(p.seq),
    p.service,
    errorClass,
    p.route,
    p.subject,
    p.events === null ? '-' : String(p.events),
  ];
}

async function execute(
  ctx: CliContext,
  dlq: Dlq,
  seqs: readonly number[],
  planCtx: PlanContext,
  opts: { rate: number; keep: boolean },
  summary: RedriveSummary,
): Promise<void> {
  const started = Date.now();
  let lastProgress = started;
  const progress = (done: number) =>
    note(
      ctx,
      `redrive ${summary.runId}: ${done}/${seqs.length} (${summary.sent} sent, ${summary.duplicate} duplicate, ${summary.deleted} deleted, ${summary.gone} gone)`,
    );
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const due = started + (i * 1_000) / opts.rate - Date.now();
    if (due > 0) await sleep(due, undefined, { signal: ctx.signal }).catch(() => undefined);
    if (ctx.signal.aborted) {
      summary.interrupted = true;
      break;
    }
    try {
      const raw = await getLetter(dlq, seq);
      if (!raw) {
        summary.gone++;
        continue;
      }
      const r = planRedrive(decodeLetter(raw, ctx.topology), planCtx);
      // The same bytes were planned at selection; only a changed letter could fail now.
      if (!r.ok) throw new Error(`it can no longer be redriven: ${r.reason}`);
      const p = r.plan;
      const ack = await publishDurable(dlq.js, p.subject, p.payload, {
        msgId: p.msgId,
        contentType: p.contentType,
        headers: p.headers,
        ...(p.expectStream ? { expectStream: p.expectStream } : {}),
      });
      if (ack.duplicate) summary.duplicate++;
      else summary.sent++;
      if (!opts.keep) {
        try {
          await dlq.jsm.streams.deleteMessage(dlq.stream, seq, false);
          summary.deleted++;
        } catch (err) {
          if (!isNoMessage(err)) throw err;
          summary.gone++;
        }
      }
    } catch (err) {
      progress(i);
      throw new RedriveFailedError(seq, err);
    }
    if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = Date.now();
      progress(i + 1);
    }
  }
}

export async function runRedrive(args: string[], ctx: CliContext): Promise<number> {
  const opts = parseRedrive(args);
  if (opts.help) {
    say(ctx, REDRIVE_USAGE);
    return 0;
  }
  const hash = createDeviceHasher(ctx.config.DEVICE_ID_HASH_KEY);
  const dlq = await openDlq(ctx);
  const runId = `redrive-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const planCtx: PlanContext = {
    topology: ctx.topology,
    dlqStream: dlq.stream,
    runId,
    replayServices: opts.replayServices,
  };
  const seqs: number[] = [];
  const rows: string[][] = [];
  const refusals: Refusal[] = [];
  let refused = 0;
  let toReplay = false;
  const report = await selectLetters(ctx, dlq, selectionOf(opts.selector, hash), (letter) => {
    const r = planRedrive(letter, planCtx);
    if (!r.ok) {
      refused++;
      if (refusals.length < MAX_LISTED) refusals.push(r);
      return;
    }
    seqs.push(letter.seq);
    if (r.plan.route === 'replay') toReplay = true;
    if (rows.length < MAX_LISTED) rows.push(planRow(r.plan, letter.errorClass));
  });
  if (report.interrupted) {
    note(ctx, 'sluice: interrupted while selecting; nothing was sent or deleted');
    return 130;
  }
  if (report.matched === 0) {
    throw new NothingToDoError(
      dlq.exists
        ? `no dead letter matches the selection (${report.scanned} read from ${dlq.stream}); nothing was sent`
        : `the DLQ stream ${dlq.stream} does not exist; nothing to redrive`,
    );
  }
  if (refused > 0) {
    note(
      ctx,
      renderTable(
        [{ header: 'SEQ', align: 'right' }, { header: 'SERVICE' }, { header: 'WHY NOT' }],
        refusals.map((r) => [String(r.seq), r.service, r.reason]),
        { maxCell: 400 },
      ),
    );
    if (refused > refusals.length) note(ctx, `… and ${refused - refusals.length} more`);
    if (!opts.skipRefused || seqs.length === 0) throw new RedriveRefusedError(refusals, refused);
    note(
      ctx,
      `sluice: leaving these ${refused} dead letter${refused === 1 ? '' : 's'} in the DLQ (--skip-refused)`,
    );
  }
  if (report.truncated) {
    note(
      ctx,
      `sluice: read the first ${report.scanned} letters of ${dlq.stream} only (--limit ${opts.selector.limit}); later letters are not part of this redrive`,
    );
  }
  const summary: RedriveSummary = {
    runId,
    stream: dlq.stream,
    selected: seqs.length,
    sent: 0,
    duplicate: 0,
    deleted: 0,
    gone: 0,
    refused,
    interrupted: false,
    truncated: report.truncated,
  };
  if (opts.dryRun) {
    if (opts.json) {
      printJson(ctx, { ...summary, dryRun: true, seqs });
      return 0;
    }
    say(
      ctx,
      renderTable(
        [
          { header: 'SEQ', align: 'right' },
          { header: 'SERVICE' },
          { header: 'ERROR CLASS' },
          { header: 'ROUTE' },
          { header: 'TO SUBJECT' },
          { header: 'EVENTS', align: 'right' },
        ],
        rows,
      ),
    );
    if (seqs.length > rows.length) say(ctx, `… and ${seqs.length - rows.length} more`);
    say(
      ctx,
      `\ndry run: would redrive ${seqs.length} dead letter${seqs.length === 1 ? '' : 's'}${opts.keep ? ' and keep them in the DLQ' : ' and delete them from the DLQ'}; nothing was sent`,
    );
    return 0;
  }
  if (toReplay) await ensureStream(dlq.jsm, ctx.topology.streams.replay, { update: false });
  try {
    await execute(ctx, dlq, seqs, planCtx, { rate: opts.rate, keep: opts.keep }, summary);
  } finally {
    const text =
      `redrive ${runId}${summary.interrupted ? ' (interrupted)' : ''}: ` +
      `${summary.sent + summary.duplicate} of ${summary.selected} dead letters re-published ` +
      `(${summary.sent} sent, ${summary.duplicate} already sent before), ${summary.deleted} deleted from ${dlq.stream}` +
      `${opts.keep ? ' (--keep)' : ''}, ${summary.gone} gone meanwhile` +
      `${refused > 0 ? `, ${refused} refused and left in the DLQ` : ''}; finished ${iso(new Date())}`;
    if (opts.json) printJson(ctx, summary);
    else say(ctx, printable(text, 1_000));
  }
  return summary.interrupted ? 130 : 0;
}
