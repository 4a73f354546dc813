/**
 * Priority classes of buffered events, highest first. When the buffer is full, a lower class is
 * evicted before a higher one, and the sender always sends the highest class that is due first.
 */
export const PRIORITIES = ['safety', 'normal', 'bulk'] as const;

/** `safety` > `normal` > `bulk`. */
export type Priority = (typeof PRIORITIES)[number];

/** Why an event left the buffer without being acknowledged by the gateway. */
export const DROP_REASONS = [
  /** Pushed out of the full buffer by a newer event of equal or higher priority. */
  'evicted',
  /** Refused by emit(): the buffer was full of events of higher priority (or all in flight). */
  'buffer_full',
  /** Larger than a batch may be (estimated at emit, or encoded when sent). */
  'too_large',
  /** Refused by the gateway as invalid (see `onReject`); resending it unchanged cannot succeed. */
  'rejected',
  /** Emitted after close(), or still buffered when close()'s deadline passed. */
  'closed',
  /** Not an event: no `kind` set. */
  'invalid',
  /**
   * Not sent: the gateway advised sampling its sensor tier (adaptive sampling) and this reading was
   * not among those kept. Never a `safety` event, nor a reading of the gateway's safety tier.
   */
  'sampled',
  /** Shed by the overloaded gateway (rejected at field `sampling`): its bulk tier was thinned. */
  'shed',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/** Index of a priority class: 0 = safety (highest). */
export type ClassIndex = 0 | 1 | 2;

export const CLASS_OF: Readonly<Record<Priority, ClassIndex>> = Object.freeze({
  safety: 0,
  normal: 1,
  bulk: 2,
});
