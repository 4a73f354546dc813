import {
  ArchiveStateError,
  type Versioned,
  journalKey,
  type PartitionRef,
  updateManifest,
  contains,
  fold,
  union,
  type SeqRanges,
  type ObjectStore,
} from '@sluice/archive';
import { LeaseLostError } from './lease';

export const JOURNAL_FORMAT = 'sluice-archiver-journal/1';

/** The objects a segment commit is about to write: removed again if the commit never completes. */
export interface PendingSegment {
  /** Stream sequences of the segment's messages. */
  seqs: SeqRanges;
  objects: Array<{ partition: PartitionRef; key: string; name: string }>;
  startedAt: string;
}

export interface JournalState {
  format: typeof JOURNAL_FORMAT;
  stream: string;
  /** Creation time of the stream incarnation the sequences belong to. */
  streamCreated: string;
  /** Every sequence at or below it is archived (or was never the archiver's to archive). */
  floor: number;
  /** Archived sequences above the floor. */
  committed: SeqRanges;
  /** A segment whose commit started and has not finished (the write-ahead intent). */
  pending: PendingSegment | null;
  /**
   * The archiver (its lease holder id) that claimed the journal last: the only one that may write
   * it. Absent in journals written before the leader lease.
   */
  holder?: string;
  updatedAt: string;
}

export interface JournalLoadOptions {
  /** This archiver's id (its lease holder id), recorded in the journal when it claims it. Required. */
  holder: string;
  /** Called when the stream was created again since the journal was written (a new journal starts). */
  onReset?: (old: JournalState) => void;
  /** Called when a write finds the journal written by another archiver since this one claimed it. */
  onTakenOver?: (err: LeaseLostError) => void;
}

/**
 * The archiver's record of which stream sequences are in the archive, one per durable consumer, and
 * the write-ahead intent of the segment being committed. Written only by the leader of that consumer
 * (the holder of its lease), which claims it when it takes over: each write replaces the object by
 * compare-and-swap, and only if it is still exactly what this archiver wrote last, so a deposed
 * leader's write after a takeover fails instead of overwriting its successor's journal.
 */
export class Journal {
  /** What this archiver wrote last: any other content means another archiver claimed the journal. */
  private written: Buffer = Buffer.alloc(0);

  private constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    private state: JournalState,
    private readonly opts: JournalLoadOptions,
  ) {}

  /**
   * Loads the journal of `durable`, or starts an empty one, and claims it for `opts.holder` (written
   * back by compare-and-swap). A journal of another incarnation of the stream (deleted and created
   * again: sequences start over) is set aside as `journal.<created>.json` after its pending segment
   * is recovered.
   */
  static async load(
    store: ObjectStore,
    durable: string,
    stream: string,
    streamCreated: string,
    opts: JournalLoadOptions,
  ): Promise<Journal> {
    const key = journalKey(durable);
    const fresh = (): JournalState => ({
      format: JOURNAL_FORMAT,
      stream,
      streamCreated,
      floor: 0,
      committed: [],
      pending: null,
      updatedAt: new Date().toISOString(),
    });
    for (let attempt = 1; ; attempt++) {
      const current = await store.getVersioned(key);
      const state = current ? Journal.parse(key, current.body) : fresh();
      const journal = new Journal(store, key, state, opts);
      if (!(await journal.claim(current?.version ?? null))) {
        if (attempt >= 3)
          throw new LeaseLostError(
            `journal ${key} kept changing while this archiver claimed it: another archiver writes it`,
          );
        continue;
      }
      if (current && (state.stream !== stream || state.streamCreated !== streamCreated)) {
        await journal.recover();
        await store.put(
          key.replace(/\.json$/, `.${state.streamCreated.replace(/[^0-9A-Za-z]/g, '')}.json`),
          current.body,
        );
        opts.onReset?.(state);
        journal.state = fresh();
        await journal.save();
      }
      return journal;
    }
  }

  private static parse(key: string, body: Uint8Array): JournalState {
    let state: JournalState;
    try {
      state = JSON.parse(Buffer.from(body).toString('utf8')) as JournalState;
    } catch (err) {
      throw new ArchiveStateError(
        `journal ${key} is not JSON; move it away to start over (the archive may then get duplicates of unacknowledged messages)`,
        { cause: err },
      );
    }
    if (state.format !== JOURNAL_FORMAT)
      throw new ArchiveStateError(
        `journal ${key} has format ${String(state.format)}, expected ${JOURNAL_FORMAT}`,
      );
    return state;
  }

  get snapshot(): Readonly<JournalState> {
    return this.state;
  }

  isCommitted(seq: number): boolean {
    return seq <= this.state.floor || contains(this.state.committed, seq);
  }

  get hasPending(): boolean {
    return this.state.pending !== null;
  }

  /** Records the intent of a segment commit before any of its objects is written. */
  async begin(pending: PendingSegment): Promise<void> {
    this.state = { ...this.state, pending };
    await this.save();
  }

  /**
   * Marks the pending segment archived, folding everything at or below `ackFloor` (acknowledged, so
   * never delivered again) into the floor.
   */
  async commit(seqs: SeqRanges, ackFloor: number | undefined): Promise<void> {
    const merged = fold(
      Math.max(this.state.floor, ackFloor ?? 0),
      union(this.state.committed, seqs),
    );
    this.state = { ...this.state, floor: merged.floor, committed: merged.ranges, pending: null };
    await this.save();
  }

  /**
   * Undoes a pending segment that never committed: its objects leave the manifests and the store, so
   * the redelivered messages are archived once, in whatever segment they land in next. Idempotent.
   * Returns the number of objects removed.
   */
  async recover(): Promise<number> {
    const pending = this.state.pending;
    if (!pending) return 0;
    for (const o of pending.objects) {
      await updateManifest(this.store, o.partition, (m) =>
        m.files.some((f) => f.name === o.name)
          ? m.files.filter((f) => f.name !== o.name)
          : undefined,
      );
      await this.store.delete(o.key);
    }
    this.state = { ...this.state, pending: null };
    await this.save();
    return pending.objects.length;
  }

  /** Writes the journal as this archiver's if it is still at `version`. */
  private async claim(version: string | null): Promise<boolean> {
    const body = this.serialize();
    if (!(await this.store.putIfVersion(this.key, body, version))) return false;
    this.written = body;
    return true;
  }

  private async save(): Promise<void> {
    const current = await this.store.getVersioned(this.key);
    if (!current || !this.written.equals(current.body)) throw this.takenOver(current);
    const body = this.serialize();
    if (!(await this.store.putIfVersion(this.key, body, current.version))) {
      // A retried conditional write that had landed the first time is refused the second time.
      const now = await this.store.getVersioned(this.key);
      if (!now || !body.equals(now.body)) throw this.takenOver(now);
    }
    this.written = body;
  }

  private serialize(): Buffer {
    this.state = { ...this.state, holder: this.opts.holder, updatedAt: new Date().toISOString() };
    return Buffer.from(JSON.stringify(this.state) + '\n', 'utf8');
  }

  private takenOver(current: Versioned | undefined): LeaseLostError {
    let by = 'someone';
    try {
      if (current)
        by = `archiver ${(JSON.parse(Buffer.from(current.body).toString('utf8')) as JournalState).holder ?? '(no holder)'}`;
    } catch {
      by = 'a writer of something that is not a journal';
    }
    const err = new LeaseLostError(
      current
        ? `journal ${this.key} was written by ${by} since ${this.opts.holder} claimed it: this archiver no longer leads`
        : `journal ${this.key} was removed since ${this.opts.holder} claimed it: this archiver stops writing`,
    );
    this.opts.onTakenOver?.(err);
    return err;
  }
}
