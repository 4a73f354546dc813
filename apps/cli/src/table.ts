// Aligned plain-text tables for the `sluice` commands' human output (`--json` prints objects instead).

/** One column: its header and how its cells line up. */
export interface Column {
  header: string;
  /** `right` for numbers. Default `left`. */
  align?: 'left' | 'right';
}

/**
 * Text safe to print on a terminal: control characters (escape sequences, newlines, tabs) become
 * `?`, and anything longer than `max` characters (default 200) is cut with `…`. For values that come
 * from messages (error texts, header values, subjects): a dead letter must not drive the terminal.
 */
export function printable(value: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
  return clean.length > max ? `${clean.slice(0, Math.max(0, max - 1))}…` : clean;
}

/**
 * Renders rows under their headers, each column as wide as its widest cell, two spaces apart,
 * without trailing spaces. Cells are passed through {@link printable} (`maxCell` characters,
 * default 200). Rows shorter than the header row are padded with empty cells.
 */
export function renderTable(
  columns: readonly Column[],
  rows: ReadonlyArray<ReadonlyArray<string>>,
  opts: { maxCell?: number } = {},
): string {
  const cells = rows.map((r) => columns.map((_, i) => printable(r[i] ?? '', opts.maxCell ?? 200)));
  const widths = columns.map((c, i) =>
    Math.max(c.header.length, ...cells.map((r) => r[i]!.length)),
  );
  const line = (r: readonly string[]) =>
    r
      .map((cell, i) =>
        columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}
