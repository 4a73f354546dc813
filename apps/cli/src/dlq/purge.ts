// `sluice dlq purge`: deletes selected dead letters from the DLQ stream for good.
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { createDeviceHasher } from '@sluice/observability';
import type { CliContext } from '../context';
import { NothingToDoError } from '../errors';
import { renderTable } from '../table';
import { selectionOf, parsePurge, PURGE_USAGE } from './options';
import { iso, note, printJson, say } from './output';
import { openDlq, selectLetters } from './source';

/** Dry-run rows kept to print. */
const MAX_LISTED = 1_000;
/** A progress line at most this often. */
const PROGRESS_EVERY_MS = 2_000;

export async function runPurge(args: string[], ctx: CliContext): Promise<number> {
  const opts = parsePurge(args);
  if (opts.help) {
    say(ctx, PURGE_USAGE);
    return 0;
  }
  const hash = createDeviceHasher(ctx.config.DEVICE_ID_HASH_KEY);
  const dlq = await openDlq(ctx);
  const seqs: number[] = [];
  const rows: string[][] = [];
  const report = await selectLetters(ctx, dlq, selectionOf(opts.selector, hash), (letter) => {
    seqs.push(letter.seq);
    if (rows.length < MAX_LISTED) {
      rows.push([String(letter.seq), letter.service, letter.errorClass, iso(letter.failedAt)]);
    }
  });
  if (report.interrupted) {
    note(ctx, 'sluice: interrupted while selecting; nothing was deleted');
    return 130;
  }
  if (seqs.length === 0) {
    throw new NothingToDoError(
      dlq.exists
        ? `no dead letter matches the selection (${report.scanned} read from ${dlq.stream}); nothing was deleted`
        : `the DLQ stream ${dlq.stream} does not exist; nothing to purge`,
    );
  }
  if (report.truncated) {
    note(
      ctx,
      `sluice: read the first ${report.scanned} letters of ${dlq.stream} only (--limit ${opts.selector.limit}); later letters are not part of this purge`,
    );
  }
  if (opts.dryRun) {
    if (opts.json) {
      printJson(ctx, { stream: dlq.stream, dryRun: true, selected: seqs.length, seqs });
      return 0;
    }
    say(
      ctx,
      renderTable(
        [
          { header: 'SEQ', align: 'right' },
          { header: 'SERVICE' },
          { header: 'ERROR CLASS' },
          { header: 'FAILED AT' },
        ],
        rows,
      ),
    );
    if (seqs.length > rows.length) say(ctx, `… and ${seqs.length - rows.length} more`);
    say(
      ctx,
      `\ndry run: would delete ${seqs.length} dead letter${seqs.length === 1 ? '' : 's'}; nothing was deleted`,
    );
    return 0;
  }
  let deleted = 0;
  let gone = 0;
  let interrupted = false;
  let lastProgress = Date.now();
  for (const seq of seqs) {
    if (ctx.signal.aborted) {
      interrupted = true;
      break;
    }
    try {
      await dlq.jsm.streams.deleteMessage(dlq.stream, seq, false);
      deleted++;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound)) {
        note(ctx, `sluice: stopped after deleting ${deleted} of ${seqs.length} dead letters`);
        throw err;
      }
      gone++;
    }
    if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = Date.now();
      note(ctx, `purge: ${deleted + gone}/${seqs.length}`);
    }
  }
  if (opts.json) {
    printJson(ctx, { stream: dlq.stream, selected: seqs.length, deleted, gone, interrupted });
  } else {
    say(
      ctx,
      `purge${interrupted ? ' (interrupted)' : ''}: deleted ${deleted} of ${seqs.length} dead letters from ${dlq.stream}${gone > 0 ? ` (${gone} were already gone)` : ''}`,
    );
  }
  return interrupted ? 130 : 0;
}
