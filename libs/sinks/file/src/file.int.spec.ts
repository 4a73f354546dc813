import { open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  describeSinkConformance,
  detectionEvent,
  GOLDEN_EVENTS,
  GOLDEN_RECORDS,
  recordsOf,
  telemetryEvent,
} from '@sluice/sinks-core/testing';
import { waitFor } from '@sluice/testing';
import { parseFileName } from './naming';
import { FileSink } from './sink';
import { createFileTestDir, readExportFiles, type FileTestDir } from './testing';

/** A region too long for a file name: the file system refuses the file it would go in. */
const LONG_REGION = 'r'.repeat(300);

describeSinkConformance('file', async () => {
  const t = await createFileTestDir('conf');
  const sink = new FileSink({ dir: t.dir, prefix: 'sluice-{kind}-{region}', maxAgeMs: '1h' });
  return {
    sink,
    storedIds: () => t.storedIds(),
    outage: t.outage,
    poisonEvent: (id) => telemetryEvent(id, { region: LONG_REGION }),
    async cleanup() {
      await sink.close(Date.now() + 2_000);
      await t.cleanup();
    },
  };
});

describe('FileSink on the real file system', () => {
  let t: FileTestDir;
  const sinks: FileSink[] = [];
  beforeEach(async () => {
    t = await createFileTestDir('fsink');
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close(Date.now() + 2_000)));
    await t.cleanup();
  });
  const make = (opts: Partial<ConstructorParameters<typeof FileSink>[0]> = {}) => {
    const s = new FileSink({ dir: t.dir, maxAgeMs: '1h', ...opts });
    sinks.push(s);
    return s;
  };
  const names = async () => (await readdir(t.dir)).sort();

  it('the file system itself refuses a name that long (the poison of the conformance suite)', async () => {
    await expect(writeFile(join(t.dir, '..', `x-${LONG_REGION}.jsonl`), 'x')).rejects.toMatchObject(
      { code: 'ENAMETOOLONG' },
    );
  });

  it.each([
    ['jsonl', false],
    ['jsonl', true],
    ['csv', false],
    ['csv', true],
  ] as const)(
    'writes the golden records as %s (gzip %s), one file per kind, named by the one scheme',
    async (format, gzip) => {
      const s = make({ format, gzip });
      expect((await s.write(recordsOf([...GOLDEN_EVENTS]))).rejected).toEqual([]);
      // Before the files are finalised a reader of finalised names sees nothing.
      expect(await readExportFiles(t.dir, { includeTemp: false })).toEqual([]);
      await s.close(Date.now() + 2_000);
      const files = await readExportFiles(t.dir, { includeTemp: false });
      const ext = gzip ? `${format}.gz` : format;
      expect(files.map((f) => f.name)).toEqual([
        expect.stringMatching(new RegExp(`^sluice-detection-\\d{8}T\\d{6}Z-000001\\.${ext}$`)),
        expect.stringMatching(new RegExp(`^sluice-telemetry-\\d{8}T\\d{6}Z-000001\\.${ext}$`)),
      ]);
      expect(files.flatMap((f) => f.records)).toEqual([GOLDEN_RECORDS[1], GOLDEN_RECORDS[0]]);
      if (gzip) {
        // A standard gunzip reads it.
        const raw = gunzipSync(await readFile(join(t.dir, files[0]!.name))).toString();
        expect(raw.endsWith('\n')).toBe(true);
      }
    },
  );

  it('rotates by size: each file below maxBytes (a batch is never split), names in write order', async () => {
    const s = make({ maxBytes: 1_500 });
    const ids: string[] = [];
    for (let b = 0; b < 8; b++) {
      const batch = Array.from({ length: 3 }, (_, i) => telemetryEvent(`sz-${b}-${i}`));
      ids.push(...batch.map((e) => e.kind!.value.eventId));
      await s.write(recordsOf(batch, b + 1));
    }
    await s.close(Date.now() + 2_000);
    const files = await readExportFiles(t.dir, { includeTemp: false });
    expect(files.length).toBeGreaterThan(2);
    expect(files.flatMap((f) => f.records.map((r) => r.event_id))).toEqual(ids);
    for (const f of files)
      expect((await stat(join(t.dir, f.name))).size).toBeLessThanOrEqual(1_500);
    expect(files.map((f) => parseFileName(f.name)!.seq)).toEqual(files.map((_, i) => i + 1));
  });

  it('keeps at most maxOpenFiles open: the least recently written is finalised first', async () => {
    const s = make({ maxOpenFiles: 1 });
    await s.write(recordsOf([telemetryEvent('of-1')]));
    await s.write(recordsOf([detectionEvent('of-2')], 2));
    const n = await names();
    expect(n.filter((x) => x.endsWith('.tmp'))).toEqual([
      expect.stringMatching(/^sluice-detection-.*\.tmp$/),
    ]);
    expect(n.filter((x) => !x.endsWith('.tmp'))).toEqual([
      expect.stringMatching(/^sluice-telemetry-.*\.jsonl$/),
    ]);
  });

  it('rotates by age: a file is finalised maxAgeMs after it was opened without another write', async () => {
    const s = make({ maxAgeMs: 200 });
    await s.write(recordsOf([telemetryEvent('age-1')]));
    expect((await names()).every((n) => n.endsWith('.tmp'))).toBe(true);
    await waitFor('the file finalised by age', async () => {
      const n = await names();
      return n.length === 1 && !n[0]!.endsWith('.tmp');
    });
    await s.write(recordsOf([telemetryEvent('age-2')], 2));
    expect(await t.storedIds()).toEqual(['age-1', 'age-2']);
    expect((await names()).length).toBe(2);
  });

  it('a reader of finalised files never sees a partial line or a file that changes after it appeared', async () => {
    const s = make({ maxBytes: 4_000, format: 'csv' });
    await s.connect();
    const seen = new Map<string, string>();
    let reading = true;
    const reader = (async () => {
      while (reading) {
        for (const name of await names()) {
          if (name.endsWith('.tmp')) continue;
          const text = await readFile(join(t.dir, name), 'utf8');
          expect(text.endsWith('\n')).toBe(true);
          if (seen.has(name)) expect(text).toBe(seen.get(name));
          else seen.set(name, text);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    const total: string[] = [];
    for (let b = 0; b < 30; b++) {
      const batch = [telemetryEvent(`rd-${b}-a`), detectionEvent(`rd-${b}-b`)];
      total.push(...batch.map((e) => e.kind!.value.eventId));
      await s.write(recordsOf(batch, b + 1));
    }
    await s.close(Date.now() + 2_000);
    reading = false;
    await reader;
    expect(seen.size).toBeGreaterThan(2);
    const files = await readExportFiles(t.dir, { includeTemp: false });
    expect(files.flatMap((f) => f.records.map((r) => r.event_id)).sort()).toEqual(total.sort());
  });

  it.each([false, true])(
    'after a crash (gzip %s), the next start keeps the complete lines of the torn file, finalises it and skips their redelivery',
    async (gzip) => {
      const crashed = make({ gzip });
      await crashed.write(recordsOf([telemetryEvent('c-1'), telemetryEvent('c-2')]));
      const [temp] = await names();
      expect(temp).toMatch(/\.tmp$/);
      const first = (await stat(join(t.dir, temp!))).size;
      await crashed.write(recordsOf([telemetryEvent('c-3')], 2));
      // The last write torn by the crash: half of its bytes reached the disk.
      const size = (await stat(join(t.dir, temp!))).size;
      await truncate(join(t.dir, temp!), first + Math.floor((size - first) / 2));

      const next = make({ gzip });
      await next.connect();
      const files = await readExportFiles(t.dir, { includeTemp: false });
      expect(files).toHaveLength(1);
      expect(files[0]!.name).toBe(temp!.replace(/\.tmp$/, ''));
      expect(files[0]!.records.map((r) => r.event_id)).toEqual(['c-1', 'c-2']);
      // The redelivered batches: the recovered records are skipped, the torn one written again.
      await next.write(recordsOf([telemetryEvent('c-1'), telemetryEvent('c-2')]));
      await next.write(recordsOf([telemetryEvent('c-3')], 2));
      await next.close(Date.now() + 2_000);
      expect((await t.storedIds()).sort()).toEqual(['c-1', 'c-2', 'c-3']);
      // The crashed writer's handle still points at the renamed file: it must not finalise it again.
      await crashed.close(Date.now() + 1_000);
      expect((await t.storedIds()).sort()).toEqual(['c-1', 'c-2', 'c-3']);
    },
  );

  it('leaves files of other prefixes alone when recovering', async () => {
    const other = join(t.dir, 'other-20260101T000000Z-000001.jsonl.tmp');
    await make().connect();
    const fh = await open(other, 'w');
    await fh.writeFile('{"event_id":"x"}\n');
    await fh.close();
    await make().connect();
    expect(await names()).toEqual(['other-20260101T000000Z-000001.jsonl.tmp']);
  });

  it('a redelivered record within the id window is not appended again; beyond it, it is (a duplicate by event_id)', async () => {
    const s = make({ recentIds: 2 });
    await s.write(recordsOf([telemetryEvent('w-1'), telemetryEvent('w-2'), telemetryEvent('w-3')]));
    await s.write(recordsOf([telemetryEvent('w-2'), telemetryEvent('w-3'), telemetryEvent('w-1')]));
    expect((await t.storedIds()).sort()).toEqual(['w-1', 'w-1', 'w-2', 'w-3']);
  });

  it('validates options up front, naming the option', () => {
    expect(() => new FileSink({ dir: '' })).toThrow(/dir: must be a folder path/);
    expect(() => new FileSink({ dir: 'x', format: 'csv', prefix: 'all' })).toThrow(
      /prefix: "all" needs \{kind\} for CSV/,
    );
    expect(() => new FileSink({ dir: 'x', prefix: 'a/{kind}' })).toThrow(
      /prefix: .* may contain only/,
    );
    expect(() => new FileSink({ dir: 'x', prefix: 'a-{device}' })).toThrow(
      /unknown placeholder \{device\}/,
    );
    expect(() => new FileSink({ dir: 'x', maxAgeMs: 'soon' })).toThrow(
      /maxAgeMs: must be a duration/,
    );
    expect(new FileSink({ dir: 'x' }).options).toMatchObject({
      format: 'jsonl',
      gzip: false,
      maxBytes: 64 * 1024 * 1024,
      maxAgeMs: 300_000,
      extension: 'jsonl',
      name: 'file',
    });
  });
});
