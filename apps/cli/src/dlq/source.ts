// Reading the DLQ stream: by sequence (direct get) or in order through an ephemeral ordered consumer,
// bounded by a letter count. Neither changes the stream; deleting is the callers' explicit step.
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { CliContext } from '../context';
import { NothingToDoError } from '../errors';
import {
  decodeLetter,
  matchesFilter,
  type Letter,
  type LetterFilter,
  type RawLetter,
} from './letter';

/** Letters fetched per pull while scanning. */
const FETCH_BATCH = 256;
/** How long one pull waits for letters the server said are there. */
const FETCH_EXPIRES_MS = 5_000;
/**
 * `--since` starts the scan this much before the given time: `failed_at` is the service's clock,
 * the stream's storage time the server's, and a letter is matched on `failed_at`.
 */
export const SINCE_CLOCK_SLACK_MS = 5 * 60_000;

/** The DLQ stream of the context's namespace, with clients to read and change it. */
export interface Dlq {
  stream: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** `false` when the stream does not exist (nothing was ever dead-lettered, or another namespace). */
  exists: boolean;
  /** Letters in the stream when opened. */
  messages: number;
  /** Last sequence when opened: a scan stops there, so letters added meanwhile are not chased. */
  lastSeq: number;
}

export async function openDlq(ctx: CliContext): Promise<Dlq> {
  const nc = await ctx.nats();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = ctx.topology.streams.dlq.name;
  try {
    const info = await jsm.streams.info(stream);
    return {
      stream,
      js,
      jsm,
      exists: true,
      messages: info.state.messages,
      lastSeq: info.state.last_seq,
    };
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      return { stream, js, jsm, exists: false, messages: 0, lastSeq: 0 };
    }
    throw err;
  }
}

function headersOf(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, values] of h) out[k] = values.join(',');
  return out;
}

/** Reads one letter by DLQ sequence; `undefined` when the stream has no message there. */
export async function getLetter(dlq: Dlq, seq: number): Promise<RawLetter | undefined> {
  const m = await dlq.jsm.streams.getMessage(dlq.stream, { seq });
  if (!m) return undefined;
  return {
    seq: m.seq,
    subject: m.subject,
    headers: headersOf(m.header),
    data: m.data,
    storedAt: m.time,
  };
}

/** How a selection went. */
export interface SelectionReport {
  /** Letters read from the stream. */
  scanned: number;
  /** Letters that passed the filters (and were handed to `onLetter`). */
  matched: number;
  /** The scan stopped at `--limit` before the end of the stream. */
  truncated: boolean;
  /** Stopped by ctx.signal. */
  interrupted: boolean;
}

export interface SelectOptions {
  /** DLQ sequences to read; every one must exist. Default: scan the stream. */
  seqs?: readonly number[];
  filter: LetterFilter;
  /** Letters read at most when scanning. */
  limit: number;
  hash: (deviceId: string) => string;
}

/**
 * Hands every letter matching `opts` to `onLetter`, in DLQ sequence order. With `seqs`, a sequence
 * that is not in the stream throws {@link NothingToDoError} before any letter is handed over.
 */
export async function selectLetters(
  ctx: CliContext,
  dlq: Dlq,
  opts: SelectOptions,
  onLetter: (letter: Letter) => void | Promise<void>,
): Promise<SelectionReport> {
  const report: SelectionReport = { scanned: 0, matched: 0, truncated: false, interrupted: false };
  const take = async (raw: RawLetter) => {
    report.scanned++;
    const letter = decodeLetter(raw, ctx.topology);
    if (!matchesFilter(letter, opts.filter, opts.hash)) return;
    report.matched++;
    await onLetter(letter);
  };
  if (opts.seqs) {
    if (!dlq.exists) throw new NothingToDoError(`the DLQ stream ${dlq.stream} does not exist`);
    const found: RawLetter[] = [];
    const missing: number[] = [];
    for (const seq of opts.seqs) {
      if (ctx.signal.aborted) return { ...report, interrupted: true };
      const raw = await getLetter(dlq, seq);
      if (raw) found.push(raw);
      else missing.push(seq);
    }
    if (missing.length > 0) {
      throw new NothingToDoError(
        `not in the DLQ stream ${dlq.stream}: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ` and ${missing.length - 20} more` : ''} (deleted, redriven or never there; sluice dlq ls lists what is)`,
      );
    }
    for (const raw of found) await take(raw);
    return report;
  }
  if (!dlq.exists || dlq.messages === 0) return report;
  return scan(ctx, dlq, opts, take, report);
}

async function scan(
  ctx: CliContext,
  dlq: Dlq,
  opts: SelectOptions,
  take: (raw: RawLetter) => Promise<void>,
  report: SelectionReport,
): Promise<SelectionReport> {
  const { services, since } = opts.filter;
  // One service is filtered by the server; several are filtered here (one filter subject is what
  // every server supports; filter_subjects needs 2.10).
  const consumer = await dlq.js.consumers.get(dlq.stream, {
    ...(services?.length === 1 ? { filter_subjects: ctx.topology.dlq(services[0]!) } : {}),
    ...(since
      ? {
          deliver_policy: DeliverPolicy.StartTime,
          opt_start_time: new Date(since.getTime() - SINCE_CLOCK_SLACK_MS).toISOString(),
        }
      : {}),
  });
  try {
    let pending = (await consumer.info(true)).num_pending;
    while (pending > 0) {
      if (report.scanned >= opts.limit) {
        report.truncated = true;
        break;
      }
      if (ctx.signal.aborted) {
        report.interrupted = true;
        break;
      }
      const batch = await consumer.fetch({
        max_messages: Math.min(FETCH_BATCH, opts.limit - report.scanned),
        expires: FETCH_EXPIRES_MS,
      });
      let got = 0;
      let end = false;
      for await (const m of batch) {
        got++;
        pending = m.info.pending;
        await take({
          seq: m.seq,
          subject: m.subject,
          headers: headersOf(m.headers),
          data: m.data,
          storedAt: m.time,
        });
        // Letters added after the command started are not chased: the scan ends at its snapshot.
        if (pending === 0 || m.seq >= dlq.lastSeq) {
          end = true;
          break;
        }
      }
      if (end || got === 0) break;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return report;
}
