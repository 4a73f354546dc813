// The console's shell: sign-in with the query API token, the page router (#/pipeline, #/fleet,
// #/device/<id>, #/alerts, #/detections), and the dark/light theme.
import './style.css';
import { getJson, onUnauthorized, token, Unauthorized } from './api';
import { h } from './dom';
import { renderAlerts } from './pages/alerts';
import { renderDetections } from './pages/detections';
import { renderDevice } from './pages/device';
import { renderFleet } from './pages/fleet';
import { renderPipeline } from './pages/pipeline';

/** What a page gets: where to draw, the route's arguments, and a signal aborted when it is left. */
export interface PageContext {
  root: HTMLElement;
  args: string[];
  signal: AbortSignal;
  session: Session;
}

export interface Session {
  name: string;
  regions: '*' | string[];
  admin: boolean;
}

const PAGES: Record<string, { title: string; render: (ctx: PageContext) => Promise<void> }> = {
  pipeline: { title: 'Pipeline', render: renderPipeline },
  fleet: { title: 'Fleet', render: renderFleet },
  device: { title: 'Device', render: renderDevice },
  alerts: { title: 'Alerts & webhooks', render: renderAlerts },
  detections: { title: 'Detections', render: renderDetections },
};

const main = document.getElementById('main')!;
let current: AbortController | undefined;
let session: Session | undefined;

// ---- theme: the system's until chosen, then remembered
const THEME_KEY = 'sluice-console-theme';
function applyTheme(theme: string | null): void {
  if (theme) document.documentElement.dataset['theme'] = theme;
  else delete document.documentElement.dataset['theme'];
}
applyTheme(localStorage.getItem(THEME_KEY));
document.getElementById('theme')!.addEventListener('click', () => {
  const dark =
    document.documentElement.dataset['theme'] === 'dark' ||
    (!document.documentElement.dataset['theme'] &&
      matchMedia('(prefers-color-scheme: dark)').matches);
  const next = dark ? 'light' : 'dark';
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});

const logout = document.getElementById('logout')!;
logout.addEventListener('click', () => {
  token.clear();
  showLogin();
});
onUnauthorized(() => {
  token.clear();
  showLogin('The console did not accept that token.');
});

function showLogin(message?: string): void {
  current?.abort();
  session = undefined;
  logout.hidden = true;
  document.body.dataset['auth'] = 'out';
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    'aria-describedby': 'token-help',
  });
  const form = h(
    'form',
    { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    h('label', { for: 'token' }, 'Query API token'),
    input,
    h(
      'p',
      { id: 'token-help', class: 'muted' },
      'The bearer token of the query API (npm start prints it and keeps it in tmp/dev-query-token).',
    ),
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    void route();
  });
  main.replaceChildren(form);
  input.focus();
}

async function route(): Promise<void> {
  current?.abort();
  if (!token.get()) return showLogin();
  const ctl = new AbortController();
  current = ctl;
  if (!session) {
    try {
      session = await getJson<Session>('api/session', ctl.signal);
    } catch (err) {
      if (err instanceof Unauthorized) return; // the prompt is shown
      main.replaceChildren(
        h('p', { class: 'error', role: 'alert' }, `Console unreachable: ${String(err)}`),
      );
      return;
    }
  }
  logout.hidden = false;
  document.body.dataset['auth'] = 'in';
  const [name = 'pipeline', ...args] = location.hash
    .replace(/^#\/?/, '')
    .split('/')
    .map(decodeURIComponent);
  const page = PAGES[name] ?? PAGES['pipeline']!;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a'))
    if (a.dataset['page'] === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  document.title = `${page.title} · Sluice console`;
  const root = h('section', { class: 'page', 'data-page': name, 'aria-busy': 'true' });
  main.replaceChildren(root);
  try {
    await page.render({ root, args, signal: ctl.signal, session });
  } catch (err) {
    if (ctl.signal.aborted || err instanceof Unauthorized) return;
    root.append(
      h('p', { class: 'error', role: 'alert' }, String(err instanceof Error ? err.message : err)),
    );
  } finally {
    root.setAttribute('aria-busy', 'false');
  }
}

window.addEventListener('hashchange', () => {
  void route();
  main.focus({ preventScroll: true });
});
void route();
