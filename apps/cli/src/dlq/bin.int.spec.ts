// The real `sluice` executable as an operator runs it: environment in, exit codes and output out.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { testUrls } from '@sluice/testing';
import {
  dlqHarness,
  HASH_KEY,
  hash,
  seedLetters,
  type DlqHarness,
  type Seeded,
} from './test-fixtures/dlq-harness';

const ROOT = join(__dirname, '..', '..', '..', '..');

function sluice(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(ROOT, 'apps/cli/bin/sluice'), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, out: stdout, err: stderr });
      },
    );
  });
}

describe('bin/sluice dlq (child process)', () => {
  let h: DlqHarness;
  let s: Seeded;
  let env: Record<string, string>;

  beforeAll(async () => {
    h = await dlqHarness();
    s = await seedLetters(h);
    env = { NATS_URL: testUrls.nats, SLUICE_NAMESPACE: h.ns, DEVICE_ID_HASH_KEY: HASH_KEY };
  });
  afterAll(() => h.cleanup());

  it('lists, redrives and maps errors to exit codes', async () => {
    const ls = await sluice(['dlq', 'ls', '--json', '--service', 'mongo-capture'], env);
    expect(ls.err).toBe('');
    expect(ls.code).toBe(0);
    const listed = JSON.parse(ls.out) as { matched: number; groups: Array<{ device: string }> };
    expect(listed.matched).toBe(2);
    expect(listed.groups.map((g) => g.device).sort()).toEqual(
      [hash('dev-A'), hash('dev-B')].sort(),
    );

    const redrive = await sluice(['dlq', 'redrive', '--seq', String(s.mongoE2)], env);
    expect(redrive.code).toBe(0);
    expect(redrive.out).toContain('1 of 1 dead letters re-published');
    expect((await h.state(h.topo.streams.replay.name)).messages).toBe(1);

    const missing = await sluice(['dlq', 'redrive', '--seq', String(s.mongoE2)], env);
    expect(missing.code).toBe(3);
    expect(missing.err).toContain(`not in the DLQ stream ${h.topo.streams.dlq.name}: ${s.mongoE2}`);

    const usage = await sluice(['dlq', 'ls', '--since', 'whenever'], env);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('--since');
    expect(usage.err).toContain('usage: sluice dlq ls');
    expect((await h.state(h.topo.streams.replay.name)).messages).toBe(1);
  });
});
