// `sluice dlq ls`: dead letters grouped by service, error class and hashed device. Read-only.
import { createDeviceHasher } from '@sluice/observability';
import type { CliContext } from '../context';
import { renderTable } from '../table';
import { compactSeqs, LetterGroups } from './group';
import { filterOf, parseLs, LS_USAGE } from './options';
import { iso, note, printJson, say } from './output';
import { openDlq, selectLetters } from './source';

export async function runLs(args: string[], ctx: CliContext): Promise<number> {
  const opts = parseLs(args);
  if (opts.help) {
    say(ctx, LS_USAGE);
    return 0;
  }
  const hash = createDeviceHasher(ctx.config.DEVICE_ID_HASH_KEY);
  const dlq = await openDlq(ctx);
  const groups = new LetterGroups(hash);
  const report = await selectLetters(
    ctx,
    dlq,
    { filter: filterOf(opts.selector, hash), limit: opts.selector.limit, hash },
    (letter) => groups.add(letter),
  );
  const list = groups.list();
  if (report.truncated) {
    note(
      ctx,
      `sluice: read the first ${report.scanned} letters of ${dlq.stream} only (--limit ${opts.selector.limit}); the counts are partial`,
    );
  }
  if (report.interrupted) note(ctx, 'sluice: interrupted; the counts are partial');
  if (opts.json) {
    printJson(ctx, {
      stream: dlq.stream,
      exists: dlq.exists,
      scanned: report.scanned,
      matched: report.matched,
      truncated: report.truncated,
      interrupted: report.interrupted,
      groups: list.map((g) => ({
        service: g.service,
        errorClass: g.errorClass,
        device: g.device,
        letters: g.letters,
        events: g.events,
        oldestFailedAt: iso(g.oldestFailedAt),
        newestFailedAt: iso(g.newestFailedAt),
        seqs: g.seqs,
      })),
    });
    return 0;
  }
  if (list.length === 0) {
    say(
      ctx,
      dlq.exists
        ? `no dead letters${report.scanned > 0 ? ' match' : ''} (${report.scanned} read from ${dlq.stream})`
        : `no dead letters: the DLQ stream ${dlq.stream} does not exist`,
    );
    return 0;
  }
  say(
    ctx,
    renderTable(
      [
        { header: 'SERVICE' },
        { header: 'ERROR CLASS' },
        { header: 'DEVICE (hashed)' },
        { header: 'LETTERS', align: 'right' },
        { header: 'EVENTS', align: 'right' },
        { header: 'OLDEST FAILED AT' },
        { header: 'NEWEST FAILED AT' },
        { header: 'SEQS' },
      ],
      list.map((g) => [
        g.service,
        g.errorClass,
        g.device ?? '-',
        String(g.letters),
        g.device === null ? '-' : String(g.events),
        iso(g.oldestFailedAt),
        iso(g.newestFailedAt),
        compactSeqs(g.seqs),
      ]),
      { maxCell: 60 },
    ),
  );
  const counted = list.reduce((n, g) => n + g.letters, 0);
  say(
    ctx,
    `\n${report.matched} dead letter${report.matched === 1 ? '' : 's'} in ${list.length} group${list.length === 1 ? '' : 's'} (${report.scanned} read from ${dlq.stream})` +
      (counted > report.matched
        ? '; a letter with events of several devices counts under each'
        : '') +
      '\nsluice dlq show <seq> prints one in full',
  );
  return 0;
}
