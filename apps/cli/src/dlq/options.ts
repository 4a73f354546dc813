// The command lines of `sluice dlq ls | show | redrive | purge`: usage texts, flags, and the selector
// (DLQ sequences and filters) they share.
import type { ParseArgsOptionsConfig } from 'node:util';
import { z } from '@sluice/config';
import { assertNameToken, assertSubjectToken } from '@sluice/contracts';
import { intFlag, listFlag, numberFlag, parseCommandLine, timeFlag } from '../args';
import { UsageError } from '../errors';
import type { LetterFilter } from './letter';

/** Letters read from the DLQ stream at most, by default (`--limit`). */
export const DEFAULT_SCAN_LIMIT = 100_000;
/** Sequences `--seq` may name at most (ranges included). */
export const MAX_SEQS = 10_000;
/** Services whose dead letters go back through `replay.<service>.<region>` (`--replay-services`). */
export const DEFAULT_REPLAY_SERVICES = ['mongo-capture', 'aggregator', 'exporter', 'exporter-*'];

const SELECTORS = `selection (filters narrow each other; several values of one filter are alternatives)
  --service <name,...>      dead letters of these services
  --error-class <name,...>  with these error classes (e.g. DecodeError)
  --since <time>            failed at or after (ISO 8601, now, or a duration ago: 30m, 2h, 7d)
  --until <time>            failed before
  --device <id,...>         with an event of these device ids (as the device sends them)
  --device-hash <h,...>     with an event of these hashed device ids (as ls prints them)
  --limit <n>               read at most n letters of the DLQ stream (default ${DEFAULT_SCAN_LIMIT})`;

export const DLQ_USAGE = `usage: sluice dlq <ls|show|redrive|purge> [options]   (sluice dlq <sub> --help)

  ls        dead letters grouped by service, error class and (hashed) device
  show      one dead letter's provenance and payload
  redrive   re-publish dead letters, after the fix, to the service that gave up; deletes them
  purge     delete dead letters`;

export const LS_USAGE = `usage: sluice dlq ls [selection] [--json]

Lists the DLQ stream's dead letters grouped by service, error class and device (device ids hashed
with DEVICE_ID_HASH_KEY), with counts and the oldest and newest failure. Changes nothing.

${SELECTORS}

  --json                    one JSON object instead of the table
  --help`;

export const SHOW_USAGE = `usage: sluice dlq show <seq> [--reveal-device] [--json]
       sluice dlq show [--seq <seqs>] [selection] [--max <n>] [--reveal-device] [--json]

Prints dead letters in full: provenance (service, error, delivery count, original stream, subject and
sequence, failure time, original headers) and the decoded payload. Changes nothing.

  <seq>, --seq <seqs>       DLQ stream sequences: 12 or 12,15,20-25
${SELECTORS}
  --max <n>                 print at most n letters (default 20)
  --reveal-device           print device ids as they are (default: hashed)
  --json                    one JSON object instead of text
  --help`;

export const REDRIVE_USAGE = `usage: sluice dlq redrive (--seq <seqs> | selection | --all) [options]

Re-publishes the selected dead letters, after the fix, to where only the service that gave up
processes them again: replay.<service>.<region> for the replay services (EventBatch payload with
Sluice-Source-* and Sluice-Redrive-Of headers), else the original subject with the original headers.
Nats-Msg-Id = redrive:<DLQ stream>:<seq>, so a repeat inside the duplicate window sends nothing new.
Each letter is deleted from the DLQ once JetStream acked its copy (unless --keep). Every selected letter
is checked before anything is sent: one that cannot go back alone to its service stops the run.

  --seq <seqs>              DLQ stream sequences: 12 or 12,15,20-25
${SELECTORS}
  --all                     every dead letter (required when no selector is given)
  --skip-refused            redrive the letters that can go back and leave the others in the DLQ
                            (default: one that cannot stops the run before anything is sent)
  --dry-run                 list what would be sent; send and delete nothing
  --keep                    leave the letters in the DLQ after sending them
  --rate <n>                letters per second at most (default 50)
  --replay-services <s,...> services fed through their replay subject; a trailing * matches a
                            prefix (default ${DEFAULT_REPLAY_SERVICES.join(',')})
  --json                    the summary as one JSON object
  --help`;

export const PURGE_USAGE = `usage: sluice dlq purge (--seq <seqs> | selection | --all) (--yes | --dry-run) [--json]

Deletes the selected dead letters from the DLQ stream for good.

  --seq <seqs>              DLQ stream sequences: 12 or 12,15,20-25
${SELECTORS}
  --all                     every dead letter (required when no selector is given)
  --yes                     really delete
  --dry-run                 list what would be deleted; delete nothing
  --json                    the summary as one JSON object
  --help`;

/**
 * Parses `12`, `12,15`, `20-25` (and lists of those) into sorted distinct sequences; the error text
 * for anything else, a range backwards or more than {@link MAX_SEQS} sequences.
 */
export function parseSeqList(items: readonly string[]): number[] | string {
  const seqs = new Set<number>();
  const parts = items.flatMap((i) => i.split(',')).map((i) => i.trim());
  for (const item of parts.filter((i) => i !== '')) {
    const m = /^(\d{1,15})(?:-(\d{1,15}))?$/.exec(item);
    if (!m) return `${JSON.stringify(item)} is not a sequence: use 12, 12,15 or 20-25`;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1) return 'sequences start at 1';
    if (to < from) return `range ${item} ends before it starts`;
    if (to - from + 1 + seqs.size > MAX_SEQS) return `names more than ${MAX_SEQS} sequences`;
    for (let s = from; s <= to; s++) seqs.add(s);
  }
  if (seqs.size === 0) return 'names no sequence: use 12, 12,15 or 20-25';
  return [...seqs].sort((a, b) => a - b);
}

const seqFlag = listFlag(MAX_SEQS).transform((items, ctx) => {
  const r = parseSeqList(items);
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  return r;
});

const serviceList = listFlag(1_000).superRefine((names, ctx) => {
  for (const n of names) {
    try {
      assertSubjectToken(n, 'service');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return;
    }
  }
});

const hashList = listFlag(10_000).refine(
  (hs) => hs.every((h) => /^[0-9a-f]{16}$/.test(h)),
  'must be hashed device ids as ls prints them (16 lowercase hex characters)',
);

const replayServiceList = listFlag(1_000).superRefine((names, ctx) => {
  for (const n of names) {
    try {
      assertNameToken(n.endsWith('*') ? `${n.slice(0, -1)}x` : n, 'service');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return;
    }
  }
});

const selectorOptions = {
  service: { type: 'string', multiple: true },
  'error-class': { type: 'string', multiple: true },
  since: { type: 'string' },
  until: { type: 'string' },
  device: { type: 'string', multiple: true },
  'device-hash': { type: 'string', multiple: true },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsOptionsConfig;

function selectorShape(now: () => number) {
  return {
    service: serviceList.optional(),
    'error-class': listFlag(1_000).optional(),
    since: timeFlag(now).optional(),
    until: timeFlag(now).optional(),
    device: listFlag(10_000).optional(),
    'device-hash': hashList.optional(),
    limit: intFlag({ min: 1, max: 10_000_000, default: DEFAULT_SCAN_LIMIT }),
    json: z.boolean().default(false),
    help: z.boolean().default(false),
  };
}

type SelectorFlags = z.output<z.ZodObject<ReturnType<typeof selectorShape>>>;

/** What a command line selects: sequences and/or filters (device ids still raw). */
export interface Selector {
  seqs?: number[];
  services?: string[];
  errorClasses?: string[];
  since?: Date;
  until?: Date;
  /** Raw device ids given by the operator; hashed before matching, never printed. */
  devices?: string[];
  deviceHashes?: string[];
  /** Letters read from the DLQ stream at most. */
  limit: number;
}

function selectorOf(f: SelectorFlags & { seq?: number[] | undefined }, usage: string): Selector {
  if (f.since && f.until && f.since.getTime() >= f.until.getTime()) {
    throw new UsageError('--since must be before --until', usage);
  }
  return {
    limit: f.limit,
    ...(f.seq ? { seqs: f.seq } : {}),
    ...(f.service ? { services: f.service } : {}),
    ...(f['error-class'] ? { errorClasses: f['error-class'] } : {}),
    ...(f.since ? { since: f.since } : {}),
    ...(f.until ? { until: f.until } : {}),
    ...(f.device ? { devices: f.device } : {}),
    ...(f['device-hash'] ? { deviceHashes: f['device-hash'] } : {}),
  };
}

/** Whether the selector names anything (a sequence or a filter); `--limit` alone does not. */
export function hasSelector(s: Selector): boolean {
  return (
    s.seqs !== undefined ||
    s.services !== undefined ||
    s.errorClasses !== undefined ||
    s.since !== undefined ||
    s.until !== undefined ||
    s.devices !== undefined ||
    s.deviceHashes !== undefined
  );
}

/** The selector's filters, device ids hashed with the installation's key. */
export function filterOf(s: Selector, hash: (deviceId: string) => string): LetterFilter {
  const hashes = [...(s.deviceHashes ?? []), ...(s.devices ?? []).map(hash)];
  return {
    ...(s.services ? { services: s.services } : {}),
    ...(s.errorClasses ? { errorClasses: s.errorClasses } : {}),
    ...(s.since ? { since: s.since } : {}),
    ...(s.until ? { until: s.until } : {}),
    ...(s.devices || s.deviceHashes ? { deviceHashes: hashes } : {}),
  };
}

/** What {@link selectLetters} reads for a selector: its sequences, its filters and its scan limit. */
export function selectionOf(
  s: Selector,
  hash: (deviceId: string) => string,
): { seqs?: number[]; filter: LetterFilter; limit: number; hash: (deviceId: string) => string } {
  return {
    ...(s.seqs ? { seqs: s.seqs } : {}),
    filter: filterOf(s, hash),
    limit: s.limit,
    hash,
  };
}

export interface LsOptions {
  help: boolean;
  selector: Selector;
  json: boolean;
}

export function parseLs(args: readonly string[], now: () => number = Date.now): LsOptions {
  const { flags } = parseCommandLine(args, {
    options: selectorOptions,
    schema: z.object(selectorShape(now)),
    usage: LS_USAGE,
  });
  return { help: flags.help, selector: selectorOf(flags, LS_USAGE), json: flags.json };
}

export interface ShowOptions {
  help: boolean;
  selector: Selector;
  max: number;
  revealDevice: boolean;
  json: boolean;
}

export function parseShow(args: readonly string[], now: () => number = Date.now): ShowOptions {
  const { flags, positionals } = parseCommandLine(args, {
    options: {
      ...selectorOptions,
      seq: { type: 'string', multiple: true },
      max: { type: 'string' },
      'reveal-device': { type: 'boolean' },
    },
    schema: z.object({
      ...selectorShape(now),
      seq: seqFlag.optional(),
      max: intFlag({ min: 1, max: 10_000, default: 20 }),
      'reveal-device': z.boolean().default(false),
    }),
    usage: SHOW_USAGE,
    maxPositionals: 1,
  });
  let seq = flags.seq;
  if (positionals.length > 0) {
    const r = parseSeqList([positionals[0]!]);
    if (typeof r === 'string') throw new UsageError(`<seq>: ${r}`, SHOW_USAGE);
    seq = [...new Set([...r, ...(seq ?? [])])].sort((a, b) => a - b);
  }
  const selector = selectorOf({ ...flags, seq }, SHOW_USAGE);
  if (!flags.help && !hasSelector(selector)) {
    throw new UsageError('name a dead letter: sluice dlq show <seq> (or a selection)', SHOW_USAGE);
  }
  return {
    help: flags.help,
    selector,
    max: flags.max,
    revealDevice: flags['reveal-device'],
    json: flags.json,
  };
}

export interface RedriveOptions {
  help: boolean;
  selector: Selector;
  all: boolean;
  skipRefused: boolean;
  dryRun: boolean;
  keep: boolean;
  /** Letters per second at most. */
  rate: number;
  replayServices: string[];
  json: boolean;
}

export function parseRedrive(
  args: readonly string[],
  now: () => number = Date.now,
): RedriveOptions {
  const { flags } = parseCommandLine(args, {
    options: {
      ...selectorOptions,
      seq: { type: 'string', multiple: true },
      all: { type: 'boolean' },
      'skip-refused': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      keep: { type: 'boolean' },
      rate: { type: 'string' },
      'replay-services': { type: 'string', multiple: true },
    },
    schema: z.object({
      ...selectorShape(now),
      seq: seqFlag.optional(),
      all: z.boolean().default(false),
      'skip-refused': z.boolean().default(false),
      'dry-run': z.boolean().default(false),
      keep: z.boolean().default(false),
      rate: numberFlag({ max: 100_000, default: 50 }),
      'replay-services': replayServiceList.default(DEFAULT_REPLAY_SERVICES),
    }),
    usage: REDRIVE_USAGE,
  });
  const selector = selectorOf(flags, REDRIVE_USAGE);
  if (!flags.help && !flags.all && !hasSelector(selector)) {
    throw new UsageError(
      'redrive needs a selection (--seq, --service, --error-class, --since, --until, --device, ' +
        '--device-hash) or --all for every dead letter',
      REDRIVE_USAGE,
    );
  }
  return {
    help: flags.help,
    selector,
    all: flags.all,
    skipRefused: flags['skip-refused'],
    dryRun: flags['dry-run'],
    keep: flags.keep,
    rate: flags.rate,
    replayServices: flags['replay-services'],
    json: flags.json,
  };
}

export interface PurgeOptions {
  help: boolean;
  selector: Selector;
  all: boolean;
  dryRun: boolean;
  json: boolean;
}

export function parsePurge(args: readonly string[], now: () => number = Date.now): PurgeOptions {
  const { flags } = parseCommandLine(args, {
    options: {
      ...selectorOptions,
      seq: { type: 'string', multiple: true },
      all: { type: 'boolean' },
      yes: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
    },
    schema: z.object({
      ...selectorShape(now),
      seq: seqFlag.optional(),
      all: z.boolean().default(false),
      yes: z.boolean().default(false),
      'dry-run': z.boolean().default(false),
    }),
    usage: PURGE_USAGE,
  });
  const selector = selectorOf(flags, PURGE_USAGE);
  if (!flags.help) {
    if (!flags.all && !hasSelector(selector)) {
      throw new UsageError(
        'purge needs a selection (--seq, --service, --error-class, --since, --until, --device, ' +
          '--device-hash) or --all for every dead letter',
        PURGE_USAGE,
      );
    }
    if (!flags.yes && !flags['dry-run']) {
      throw new UsageError(
        'purge deletes dead letters for good: add --yes, or --dry-run to list them first',
        PURGE_USAGE,
      );
    }
  }
  return {
    help: flags.help,
    selector,
    all: flags.all,
    dryRun: flags['dry-run'],
    json: flags.json,
  };
}

/** Whether `service` is one of `patterns` (exact names, or prefixes ending in `*`). */
export function isReplayService(service: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    p.endsWith('*') ? service.startsWith(p.slice(0, -1)) : service === p,
  );
}
