// `sluice dlq ls`: dead letters counted by service, error class and hashed device. Pure.
import { letterDevices, type Letter } from './letter';

/** Sequences a group keeps to print (the count is always exact). */
export const MAX_GROUP_SEQS = 100;

export interface LetterGroup {
  service: string;
  errorClass: string;
  /** Keyed hash of the device id; `null` for letters without events (or with an unreadable payload). */
  device: string | null;
  /** Dead letters with at least one event of this device (a batch of several devices counts under each). */
  letters: number;
  /** Events of this device in those letters; 0 for a group without device. */
  events: number;
  oldestFailedAt: Date;
  newestFailedAt: Date;
  /** The first {@link MAX_GROUP_SEQS} DLQ sequences added (ascending: letters are read in order). */
  seqs: number[];
}

/** Accumulates letters into groups without keeping the letters. */
export class LetterGroups {
  private readonly groups = new Map<string, LetterGroup>();
  /** Letters added. */
  letters = 0;

  constructor(private readonly hash: (deviceId: string) => string) {}

  add(letter: Letter): void {
    this.letters++;
    const devices = letterDevices(letter);
    if (devices.size === 0) {
      this.bump(letter, null, 0);
      return;
    }
    const byHash = new Map<string, number>();
    for (const [id, n] of devices) {
      const h = this.hash(id);
      byHash.set(h, (byHash.get(h) ?? 0) + n);
    }
    for (const [h, n] of byHash) this.bump(letter, h, n);
  }

  private bump(letter: Letter, device: string | null, events: number): void {
    const key = JSON.stringify([letter.service, letter.errorClass, device]);
    let g = this.groups.get(key);
    if (!g) {
      g = {
        service: letter.service,
        errorClass: letter.errorClass,
        device,
        letters: 0,
        events: 0,
        oldestFailedAt: letter.failedAt,
        newestFailedAt: letter.failedAt,
        seqs: [],
      };
      this.groups.set(key, g);
    }
    g.letters++;
    g.events += events;
    if (letter.failedAt < g.oldestFailedAt) g.oldestFailedAt = letter.failedAt;
    if (letter.failedAt > g.newestFailedAt) g.newestFailedAt = letter.failedAt;
    if (g.seqs.length < MAX_GROUP_SEQS) g.seqs.push(letter.seq);
  }

  /** Sorted by service, error class, then most letters first, then device. */
  list(): LetterGroup[] {
    return [...this.groups.values()].sort(
      (a, b) =>
        a.service.localeCompare(b.service) ||
        a.errorClass.localeCompare(b.errorClass) ||
        b.letters - a.letters ||
        (a.device ?? '').localeCompare(b.device ?? ''),
    );
  }
}

/** `3,5-9,12`: ascending sequences as ranges, at most `maxParts` parts, then `…`. */
export function compactSeqs(seqs: readonly number[], maxParts = 4): string {
  const parts: string[] = [];
  let i = 0;
  while (i < seqs.length) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
    if (parts.length === maxParts) {
      parts.push('…');
      break;
    }
    parts.push(j === i ? String(seqs[i]) : `${seqs[i]}-${seqs[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
