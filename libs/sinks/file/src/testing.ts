// `@sluice/sinks-file/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
// A folder of its own for one test, a reader of what the sink wrote there, and an outage of it.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordsFromCsv, type ExportRecord } from '@sluice/sinks-core';
import { parseFileName } from './naming';
import { completeText } from './segment';

/** One file of the folder and the records in it. */
export interface ExportFile {
  name: string;
  /** Still being written (`.tmp`): its complete records, as a recovery would keep them. */
  temp: boolean;
  records: ExportRecord[];
}

/**
 * Reads every file the sink wrote in `dir`, in name order. Temp files are read like the recovery
 * reads them (complete records only) when `includeTemp` (default true), else left out, as a reader
 * of finalised files does.
 */
export async function readExportFiles(
  dir: string,
  { includeTemp = true }: { includeTemp?: boolean } = {},
): Promise<ExportFile[]> {
  if (!existsSync(dir)) return [];
  const out: ExportFile[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const p = parseFileName(name);
    if (!p || (p.temp && !includeTemp)) continue;
    const bytes = await readFile(join(dir, name)).catch((err: NodeJS.ErrnoException) => {
      // Renamed while listed: read again under the final name.
      if (err.code === 'ENOENT' && p.temp) return readFile(join(dir, name.slice(0, -4)));
      throw err;
    });
    const text = completeText(bytes, p.gzip, p.format).toString('utf8');
    const records =
      p.format === 'csv'
        ? recordsFromCsv(text)
        : text
            .split('\n')
            .filter((l) => l)
            .map((l) => JSON.parse(l) as ExportRecord);
    out.push({ name, temp: p.temp, records });
  }
  return out;
}

export interface FileTestDir {
  dir: string;
  /** Every stored event id (finalised and temp files), one entry per line: duplicates show. */
  storedIds(): Promise<string[]>;
  /**
   * Makes the folder unusable, as an unmounted volume would be: it is moved away and a plain file
   * takes its name; `restore()` moves it back (the sink's open file is where it was again).
   */
  outage: { cut(): Promise<void>; restore(): Promise<void> };
  cleanup(): Promise<void>;
}

export async function createFileTestDir(prefix = 'sluice-file-sink'): Promise<FileTestDir> {
  const root = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const dir = join(root, 'out');
  const away = join(root, 'away');
  return {
    dir,
    async storedIds() {
      // A temp file may be finalised between the listing and the read: read until a stable view.
      for (let attempt = 0; ; attempt++) {
        try {
          return (await readExportFiles(dir)).flatMap((f) => f.records.map((r) => r.event_id));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
        }
      }
    },
    outage: {
      async cut() {
        await rename(dir, away);
        await writeFile(dir, 'the export folder is away\n');
      },
      async restore() {
        await unlink(dir);
        await rename(away, dir);
      },
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
