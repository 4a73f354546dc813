import { Writable } from 'node:stream';

/** A pino destination that keeps every line parsed, for tests of what a logger writes. */
export function captureLogLines(): {
  lines: Array<Record<string, unknown>>;
  destination: Writable;
} {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, destination };
}
