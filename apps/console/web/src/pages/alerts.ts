// Alerts & webhooks: each subscription's endpoint state, its recent delivery attempts and dead
// deliveries, with a redrive button and secret rotation (through the webhook admin API; `*` tokens).
// Refreshed every 5 s while open.
import { ApiError, getJson, postJson } from '../api';
import { ago, h, table } from '../dom';
import type { PageContext } from '../main';

interface Subscription {
  id: string;
  url: string;
  description?: string | null;
  enabled: boolean;
  disabledReason?: string | null;
  failingSince?: string | null;
  secretCount: number;
  filter: unknown;
}
interface Attempt {
  webhookId: string;
  attempt: number;
  eventType: string;
  outcome: string;
  status?: number | null;
  latencyMs?: number | null;
  error?: string | null;
  attemptedAt: string;
}
interface DeadLetter {
  webhookId: string;
  eventType: string;
  attempts: number;
  reason: string;
  lastStatus?: number | null;
  deadAt: string;
  redrivenAt?: string | null;
}
interface Webhook {
  subscription: Subscription;
  attempts: Attempt[];
  /** Dead deliveries not redriven yet (all of them, not only those listed). */
  deadWaiting: number;
  /** The latest dead deliveries. */
  deadLetters: DeadLetter[];
}

export async function renderAlerts({ root, signal, session }: PageContext): Promise<void> {
  root.append(h('h1', {}, 'Alerts & webhooks'));
  if (!session.admin) {
    root.append(
      h(
        'p',
        { class: 'muted' },
        'Webhook administration needs a token for every region ("*") and a console configured with WEBHOOK_ADMIN_TOKEN.',
      ),
    );
    return;
  }
  const status = h('p', { class: 'muted' });
  // What the last button did; apart from the refresh line so a refresh does not hide it.
  const outcome = h('p', { class: 'outcome', role: 'status' });
  const list = h('div', { class: 'webhooks' });
  root.append(status, outcome, list);

  // Per subscription: a rotation armed, the last rotation's message; kept across refreshes.
  const ui = new Map<string, CardState>();
  const refresh = async () => {
    const { webhooks } = await getJson<{ webhooks: Webhook[] }>('api/webhooks', signal);
    status.textContent = `${webhooks.length} subscription(s) · updated ${new Date().toLocaleTimeString()}`;
    list.replaceChildren(...webhooks.map((w) => card(w, refresh, outcome, ui)));
    if (webhooks.length === 0) list.append(h('p', { class: 'muted' }, 'No webhook subscriptions.'));
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => undefined), 5000);
  signal.addEventListener('abort', () => clearInterval(timer));
}

interface CardState {
  armed: boolean;
  message: string;
}

function card(
  w: Webhook,
  refresh: () => Promise<void>,
  status: HTMLElement,
  ui: Map<string, CardState>,
): HTMLElement {
  const s = w.subscription;
  const dead = w.deadWaiting;
  const failures = w.attempts.filter((a) => a.outcome !== 'delivered' && a.outcome !== 'success');
  const state = !s.enabled ? 'disabled' : s.failingSince ? 'failing' : 'healthy';
  const st = ui.get(s.id) ?? { armed: false, message: '' };
  ui.set(s.id, st);
  const secret = h('output', { class: 'secret', 'aria-live': 'polite' }, st.message);
  const label = () => (st.armed ? 'Confirm rotation' : 'Rotate secret');
  const rotate = h(
    'button',
    { type: 'button', class: 'ghost', 'data-action': 'rotate', 'aria-pressed': st.armed },
    label(),
  );
  rotate.addEventListener('click', () => {
    st.armed = !st.armed;
    if (st.armed) {
      rotate.textContent = label();
      return;
    }
    rotate.textContent = label();
    void postJson<{ secret: string }>(`api/webhooks/${encodeURIComponent(s.id)}/rotate`).then(
      (r) => {
        st.message = `New secret (shown once; the old ones keep signing for a day): ${r.secret}`;
        secret.textContent = st.message;
        void refresh().catch(() => undefined);
      },
      (err: unknown) => {
        st.message = `Rotation failed: ${err instanceof ApiError ? err.message : String(err)}`;
        secret.textContent = st.message;
      },
    );
  });
  const redrive = h(
    'button',
    { type: 'button', 'data-action': 'redrive', disabled: dead === 0 },
    `Redrive ${dead} dead deliver${dead === 1 ? 'y' : 'ies'}`,
  );
  redrive.addEventListener('click', () => {
    redrive.disabled = true;
    void postJson<{ redriven: number; more: boolean }>(
      `api/webhooks/${encodeURIComponent(s.id)}/redrive`,
    ).then(
      async (r) => {
        status.textContent = `Redriven ${r.redriven} deliver${r.redriven === 1 ? 'y' : 'ies'}${r.more ? ' (more remain)' : ''}`;
        await refresh();
      },
      (err: unknown) => {
        status.textContent = `Redrive failed: ${String(err)}`;
        redrive.disabled = false;
      },
    );
  });
  return h(
    'article',
    { class: `card webhook ${state}`, 'data-subscription': s.id, 'data-state': state },
    h(
      'h2',
      {},
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      s.description || s.url,
      ' ',
      h('span', { class: 'badge' }, state),
    ),
    h(
      'p',
      { class: 'muted' },
      `${s.url} · ${s.secretCount} secret(s)`,
      s.failingSince ? ` · failing since ${ago(s.failingSince)}` : '',
      s.disabledReason ? ` · ${s.disabledReason}` : '',
    ),
    h('div', { class: 'toolbar' }, redrive, rotate),
    secret,
    table(
      `Latest deliveries (${failures.length} of ${w.attempts.length} failed)`,
      ['When', 'Event', 'Attempt', 'Outcome', 'Status', 'Latency'],
      w.attempts.map((a) => ({
        className: failures.includes(a) ? 'bad' : '',
        attrs: { 'data-webhook-id': a.webhookId, 'data-outcome': a.outcome },
        cells: [
          h('time', { datetime: a.attemptedAt }, ago(a.attemptedAt)),
          a.eventType,
          String(a.attempt),
          a.outcome,
          a.status ?? a.error ?? '—',
          a.latencyMs !== null && a.latencyMs !== undefined ? `${a.latencyMs} ms` : '—',
        ],
      })),
    ),
    table(
      `Dead deliveries (${dead} waiting; latest ${w.deadLetters.length} shown)`,
      ['Dead since', 'Event', 'Attempts', 'Reason', 'Redriven'],
      w.deadLetters.map((d) => ({
        className: d.redrivenAt ? '' : 'bad',
        attrs: { 'data-dead': d.webhookId },
        cells: [
          h('time', { datetime: d.deadAt }, ago(d.deadAt)),
          d.eventType,
          String(d.attempts),
          `${d.reason}${d.lastStatus ? ` (${d.lastStatus})` : ''}`,
          d.redrivenAt ? ago(d.redrivenAt) : 'no',
        ],
      })),
    ),
  );
}
