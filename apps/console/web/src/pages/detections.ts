// Detections: the latest frames of each camera stream, each detection's box drawn on a frame-sized
// canvas (boxes are fractions of the frame) with its class and confidence. The console watches the
// clean subjects only while this page is open; refreshed every 2 s.
import { getJson } from '../api';
import { css } from '../chart';
import { ago, h, num } from '../dom';
import type { PageContext } from '../main';

interface Frame {
  eventId: string;
  frameTime: string;
  detections: Array<{
    label: string;
    classId: number;
    confidence: number;
    trackerId: string;
    bbox: { left: number; top: number; width: number; height: number } | null;
  }>;
}
interface CameraStream {
  deviceId: string;
  streamId: string;
  region: string;
  frames: number;
  recent: Frame[];
}

const W = 320;
const H = 180;

function draw(canvas: HTMLCanvasElement, frame: Frame | undefined): void {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  const g = canvas.getContext('2d')!;
  g.scale(dpr, dpr);
  g.fillStyle = css('--frame');
  g.fillRect(0, 0, W, H);
  if (!frame) return;
  const colors = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'].map(css);
  g.font = '12px system-ui, sans-serif';
  g.lineWidth = 2;
  for (const d of frame.detections) {
    if (!d.bbox) continue;
    const color = colors[d.classId % colors.length]!;
    const x = d.bbox.left * W;
    const y = d.bbox.top * H;
    g.strokeStyle = color;
    g.strokeRect(x, y, d.bbox.width * W, d.bbox.height * H);
    const text = `${d.label} ${Math.round(d.confidence * 100)}%`;
    const tw = g.measureText(text).width + 6;
    g.fillStyle = color;
    g.fillRect(x - 1, Math.max(0, y - 16), tw, 16);
    g.fillStyle = '#000';
    g.fillText(text, x + 2, Math.max(12, y - 4));
  }
}

export async function renderDetections({ root, signal }: PageContext): Promise<void> {
  root.append(h('h1', {}, 'Detections'));
  const status = h('p', { class: 'muted', role: 'status' });
  const grid = h('div', { class: 'cameras' });
  root.append(status, grid);
  const refresh = async () => {
    const r = await getJson<{ watching: boolean; since?: string; streams: CameraStream[] }>(
      'api/detections',
      signal,
    );
    status.textContent =
      r.streams.length === 0
        ? `Watching the clean stream for detections since ${r.since ? ago(r.since) : 'now'}; none yet.`
        : `${r.streams.length} camera stream(s) · watching since ${ago(r.since)}`;
    grid.replaceChildren(
      ...r.streams.map((s) => {
        const last = s.recent[0];
        const canvas = h('canvas', {
          width: W,
          height: H,
          class: 'frame',
          role: 'img',
          'aria-label': last
            ? `Frame ${last.frameTime}: ${last.detections.map((d) => `${d.label} ${Math.round(d.confidence * 100)}%`).join(', ') || 'nothing detected'}`
            : 'no frame',
        });
        draw(canvas, last);
        return h(
          'article',
          {
            class: 'card camera',
            'data-stream': `${s.deviceId}/${s.streamId}`,
            'data-boxes': String(last?.detections.filter((d) => d.bbox).length ?? 0),
          },
          h(
            'h2',
            {},
            `${s.deviceId} · ${s.streamId}`,
            ' ',
            h('span', { class: 'muted' }, `${s.region} · ${s.frames} frames`),
          ),
          canvas,
          h(
            'ul',
            { class: 'detections' },
            ...(last?.detections ?? []).map((d) =>
              h(
                'li',
                {},
                h('strong', {}, d.label),
                ` class ${d.classId} · ${num(d.confidence * 100, 0)}%`,
                d.trackerId ? ` · track ${d.trackerId}` : '',
              ),
            ),
          ),
          last
            ? h(
                'p',
                { class: 'muted' },
                h(
                  'time',
                  { datetime: last.frameTime },
                  `frame ${new Date(last.frameTime).toLocaleTimeString()}`,
                ),
              )
            : null,
        );
      }),
    );
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => undefined), 2000);
  signal.addEventListener('abort', () => clearInterval(timer));
}
