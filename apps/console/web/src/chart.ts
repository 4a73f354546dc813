// uPlot with the console's theme: colours from the CSS variables, resized with its container.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const css = (name: string): string =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';

export const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'];

/** Axis styling from the theme. */
export function axes(): uPlot.Axis[] {
  const stroke = css('--fg-muted');
  const grid = { stroke: css('--grid'), width: 1 };
  return [
    { stroke, grid, ticks: grid },
    { stroke, grid, ticks: grid, size: 56 },
  ];
}

/** Mounts a chart in `host`, following its width; destroyed when `signal` aborts. */
export function mountChart(
  host: HTMLElement,
  opts: Omit<uPlot.Options, 'width'>,
  data: uPlot.AlignedData,
  signal: AbortSignal,
): uPlot {
  const plot = new uPlot({ ...opts, width: Math.max(240, host.clientWidth) }, data, host);
  const ro = new ResizeObserver(() =>
    plot.setSize({ width: Math.max(240, host.clientWidth), height: opts.height }),
  );
  ro.observe(host);
  signal.addEventListener('abort', () => {
    ro.disconnect();
    plot.destroy();
  });
  return plot;
}
