/**
 * The I/O side of `npm start`'s terminal live view: polls each service's `/readyz` and `/metrics` (ops
 * port, plain HTTP on loopback), checks whether Jaeger's UI answers, and redraws the frame that
 * dashboard.ts renders, in place, at most once per interval. Uses the terminal's alternate screen and
 * hides the cursor; {@link LiveView.stop} restores both.
 */
import { connect as tcpConnect } from 'node:net';
import {
  parsePrometheus,
  renderDashboard,
  serviceRow,
  type DashboardSnapshot,
  type Scrape,
  type ServiceState,
} from './dashboard';

/** A child the view shows. */
export interface LiveChild {
  name: string;
  pid: number | undefined;
  alive(): boolean;
  /** Its ops port (`/readyz`, `/metrics`); the simulator has none. */
  opsPort: number | undefined;
  /** Its last output line (the simulator's live line). */
  lastLine(): string | undefined;
}

/** Options of {@link LiveView}. */
export interface LiveViewOptions {
  out: NodeJS.WriteStream;
  /** The services, in display order. */
  services: () => readonly LiveChild[];
  /** The fleet simulator, once started. */
  sim: () => LiveChild | undefined;
  /** Whether the services serve TLS. */
  tls: boolean;
  /** Label/value lines under the table (Jaeger's line is added here when its UI answers). */
  info: ReadonlyArray<[string, string]>;
  /** Time between two frames. Default 1000 ms. */
  intervalMs?: number;
  /** Jaeger's UI. Default `http://127.0.0.1:16686`. */
  jaegerUrl?: string;
}

const ESC = '\x1b[';
const ENTER = `${ESC}?1049h${ESC}?25l`; // alternate screen, hide cursor
const LEAVE = `${ESC}?25h${ESC}?1049l`; // show cursor, main screen

async function get(url: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined;
  }
}

function tcpAnswers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: u.hostname, port: Number(u.port) || 80 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(300, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The redrawing terminal view of the dev pipeline. */
export class LiveView {
  private readonly scrapes = new Map<
    string,
    { prev?: Scrape; cur?: Scrape; ready?: number; answered?: boolean }
  >();
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastMessage: string | undefined;
  private jaeger = false;

  constructor(private readonly opts: LiveViewOptions) {}

  /** Enters the alternate screen and draws a frame every interval until {@link stop}. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.opts.out.write(ENTER);
    const loop = async () => {
      if (!this.running) return;
      await this.poll();
      if (!this.running) return;
      this.draw();
      this.timer = setTimeout(() => void loop(), this.opts.intervalMs ?? 1000);
    };
    void loop();
  }

  /** Shown on the frame's last line (the supervisor's messages go there instead of scrolling). */
  message(msg: string): void {
    this.lastMessage = msg;
    if (this.running) this.draw();
  }

  /** Stops redrawing and gives the terminal back (cursor shown, main screen). Idempotent. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    this.opts.out.write(LEAVE);
  }

  private async poll(): Promise<void> {
    const jaegerUrl = this.opts.jaegerUrl ?? 'http://127.0.0.1:16686';
    const [jaeger] = await Promise.all([
      tcpAnswers(jaegerUrl),
      ...this.opts.services().map(async (c) => {
        if (c.opsPort === undefined || !c.alive()) return;
        const base = `http://127.0.0.1:${c.opsPort}`;
        const [ready, metrics] = await Promise.all([get(`${base}/readyz`), get(`${base}/metrics`)]);
        const entry = this.scrapes.get(c.name) ?? {};
        entry.answered ||= ready !== undefined;
        entry.ready = ready?.status;
        if (metrics?.status === 200) {
          entry.prev = entry.cur;
          entry.cur = { at: Date.now(), samples: parsePrometheus(metrics.text) };
        }
        this.scrapes.set(c.name, entry);
      }),
    ]);
    this.jaeger = jaeger;
  }

  /** The current frame's snapshot. */
  snapshot(): DashboardSnapshot {
    const state = (c: LiveChild): ServiceState => {
      if (!c.alive()) return 'exited';
      if (c.opsPort === undefined) return 'running';
      const s = this.scrapes.get(c.name);
      if (s?.ready === undefined) return s?.answered ? 'no answer' : 'starting';
      return s.ready === 200 ? 'ready' : 'not ready';
    };
    const sim = this.opts.sim();
    const jaegerUrl = this.opts.jaegerUrl ?? 'http://127.0.0.1:16686';
    return {
      uptimeS: (Date.now() - this.startedAt) / 1000,
      tls: this.opts.tls,
      rows: this.opts.services().map((c) => {
        const s = this.scrapes.get(c.name);
        return serviceRow(c.name, c.pid, state(c), s?.prev, s?.cur);
      }),
      sim: sim ? { pid: sim.pid, state: state(sim), line: sim.lastLine() } : undefined,
      info: [...this.opts.info, ['jaeger', this.jaeger ? jaegerUrl : `not running (${jaegerUrl})`]],
      lastMessage: this.lastMessage,
    };
  }

  private draw(): void {
    const width = Math.max(20, (this.opts.out.columns || 120) - 1);
    const lines = renderDashboard(this.snapshot(), width);
    // Home, each line then clear-to-end-of-line, then clear below: no flicker, no scroll.
    this.opts.out.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}${ESC}J`);
  }
}
