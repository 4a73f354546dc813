// Small DOM helpers: elements from tag, attributes and children (text is always text, never HTML).

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** Creates `<tag>` with attributes (`on<event>` functions become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children)
    if (c !== null && c !== undefined && c !== false)
      el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
  return el;
}

/** A number with a fixed number of significant decimals, `—` for none. */
export function num(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** `12 s ago`, `3 min ago`, … */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** `850 ms`, `2.4 s`. */
export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return v < 1000 ? `${Math.round(v)} ms` : `${num(v / 1000, 1)} s`;
}

/** A table with a caption, header row and rows (each row's cells, and an optional class). */
export function table(
  caption: string,
  head: string[],
  rows: Array<{ cells: Child[]; className?: string; attrs?: Attrs }>,
): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, ...head.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...rows.map((r) =>
          h('tr', { class: r.className, ...r.attrs }, ...r.cells.map((c) => h('td', {}, c))),
        ),
      ),
    ),
  );
}
