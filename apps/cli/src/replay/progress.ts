/** Token bucket over events: `take(n)` waits until n events may go (a burst of at most one second). */
export class RateLimiter {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly perSecond: number | undefined) {
    this.tokens = perSecond ?? 0;
  }

  async take(n: number, signal: AbortSignal): Promise<void> {
    if (this.perSecond === undefined) return;
    // A batch larger than the burst still goes, once the bucket has filled to it.
    const need = Math.min(n, this.perSecond);
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(
        this.perSecond,
        this.tokens + ((now - this.last) / 1000) * this.perSecond,
      );
      this.last = now;
      if (this.tokens >= need) {
        this.tokens -= n;
        return;
      }
      if (signal.aborted) return;
      const waitMs = Math.min(1_000, ((need - this.tokens) / this.perSecond) * 1000);
      await new Promise((r) => setTimeout(r, Math.max(1, waitMs)));
    }
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Progress on stderr: a bar over the rows of the selected files (the manifests' counts, known up
 * front), events published, rate and ETA. Redrawn in place on a terminal, a line every 5 s otherwise.
 */
export class Progress {
  private readonly started = performance.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly err: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly totalRows: number,
    private readonly label: string,
  ) {}

  update(rowsScanned: number, events: number, force = false): void {
    const now = performance.now();
    const interval = this.err.isTTY ? 250 : 5_000;
    if (!force && now - this.lastDraw < interval) return;
    this.lastDraw = now;
    const elapsed = now - this.started;
    const share = this.totalRows > 0 ? Math.min(1, rowsScanned / this.totalRows) : 1;
    const rate = elapsed > 0 ? (events / elapsed) * 1000 : 0;
    const eta = share > 0 ? (elapsed / share) * (1 - share) : Infinity;
    const width = 24;
    const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
    const line = `${this.label} [${bar}] ${(share * 100).toFixed(1)}%  ${fmt(events)} events  ${fmt(rate)} ev/s  ETA ${duration(eta)}`;
    if (this.err.isTTY) this.err.write(`\r${line}\u001b[K`);
    else this.err.write(line + '\n');
    this.drawn = true;
  }

  done(): void {
    if (this.drawn && this.err.isTTY) this.err.write('\n');
  }
}
