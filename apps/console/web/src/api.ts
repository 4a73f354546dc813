// The console's API as the pages use it: the bearer token (kept for the browser session only), JSON
// requests, and the pipeline event stream read with fetch (so the token travels in a header, never a
// URL), reconnecting after a pause.

const KEY = 'sluice-console-token';

/** A 401 from the console: the page shows the sign-in prompt. */
export class Unauthorized extends Error {
  override readonly name = 'Unauthorized';
}

/** Any other error answer, with the problem's detail. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const token = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (t: string) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

const listeners = new Set<() => void>();
/** Called whenever the console answers 401. */
export function onUnauthorized(fn: () => void): void {
  listeners.add(fn);
}

async function check(res: Response): Promise<Response> {
  if (res.status === 401) {
    for (const fn of listeners) fn();
    throw new Unauthorized('the console did not accept the token');
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      detail = ((await res.json()) as { detail?: string }).detail ?? detail;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, detail);
  }
  return res;
}

const headers = (): Record<string, string> => ({ authorization: `Bearer ${token.get() ?? ''}` });

/** GET `path` (under the console) as JSON. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await check(await fetch(path, { headers: headers(), signal: signal ?? null }));
  return (await res.json()) as T;
}

/** POST `body` to `path` as JSON. */
export async function postJson<T>(path: string, body: unknown = {}): Promise<T> {
  const res = await check(
    await fetch(path, {
      method: 'POST',
      headers: { ...headers(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
  return (await res.json()) as T;
}

/** A query API GET through the console (`/v1/...`), with the same token. */
export function query<T>(
  path: string,
  params: Record<string, string | number> = {},
  signal?: AbortSignal,
) {
  const qs = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  const q = qs.size > 0 ? `?${qs.toString()}` : '';
  return getJson<T>(`api/query${path}${q}`, signal);
}

/**
 * Reads the event stream until `signal` aborts, calling `onEvent` with each event's name and parsed
 * data; reconnects 2 s after a drop. A 401 ends it (and signs out).
 */
export async function stream(
  signal: AbortSignal,
  onEvent: (event: string, data: unknown) => void,
  onState: (connected: boolean) => void,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await check(await fetch('api/stream', { headers: headers(), signal }));
      onState(true);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) onEvent(event, JSON.parse(data.join('\n')));
        }
      }
    } catch (err) {
      if (err instanceof Unauthorized || signal.aborted) return;
    }
    onState(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}
