import {
  ArchiveStateError,
  journalKey,
  type PartitionRef,
  updateManifest,
  contains,
  fold,
  union,
  type SeqRanges,
  type ObjectStore,
} from '@sluice/archive';

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
  updatedAt: string;
}

/**
 * The archiver's record of which stream sequences are in the archive, one per durable consumer, and
 * the write-ahead intent of the segment being committed. Written only by the one archiver process of
 * that consumer; each write replaces the object atomically.
 */
export class Journal {
  private constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    private state: JournalState,
  ) {}

  /**
   * Loads the journal of `durable`, or starts an empty one. A journal of another incarnation of the
   * stream (deleted and created again: sequences start over) is set aside as `journal.<created>.json`
   * after its pending segment is recovered.
   */
  static async load(
    store: ObjectStore,
    durable: string,
    stream: string,
    streamCreated: string,
    onReset?: (old: JournalState) => void,
  ): Promise<Journal> {
    const key = journalKey(durable);
    const body = await store.get(key);
    const fresh: JournalState = {
      format: JOURNAL_FORMAT,
      stream,
      streamCreated,
      floor: 0,
      committed: [],
      pending: null,
      updatedAt: new Date().toISOString(),
    };
    if (!body) return new Journal(store, key, fresh);
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
    const journal = new Journal(store, key, state);
    if (state.stream !== stream || state.streamCreated !== streamCreated) {
      await journal.recover();
      await store.put(
        key.replace(/\.json$/, `.${state.streamCreated.replace(/[^0-9A-Za-z]/g, '')}.json`),
        body,
      );
      onReset?.(state);
      journal.state = fresh;
      await journal.save();
    }
    return journal;
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

  private async save(): Promise<void> {
    this.state.updatedAt = new Date().toISOString();
    await this.store.put(this.key, Buffer.from(JSON.stringify(this.state) + '\n', 'utf8'));
  }
}
