// `npm run images` as its own process: the dry run prints one build per app and builds nothing; a
// run without an answering engine fails naming it, and claims no image.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { planImages } from './images';

const ROOT = join(__dirname, '..', '..', '..');

function images(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'tools/images/src/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm run images', () => {
  it('--dry-run prints the build command of every app', () => {
    const r = images(['--dry-run']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^# \d+ images?; run from .*; nothing was built \(--dry-run\)$/);
    const plan = planImages(ROOT);
    expect(lines.slice(1)).toHaveLength(plan.length);
    for (const [i, image] of plan.entries()) {
      expect(lines[i + 1]).toMatch(
        new RegExp(
          `^docker build --file Dockerfile --build-arg APP=${image.app} .* --tag sluice/${image.app}:${image.version.replace(/\./g, '\\.')} \\.$`,
        ),
      );
    }
  });

  it('--dry-run with podman, a registry, a version and --push for some apps', () => {
    const r = images([
      '--dry-run',
      '--engine',
      'podman',
      '--only',
      'aggregator,webhook-dispatcher',
      '--version',
      '2.0.1',
      '--registry',
      'registry.example.com/sluice-team',
      '--push',
    ]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n').slice(1);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^podman build .*--build-arg APP=aggregator .*--tag registry\.example\.com\/sluice-team\/sluice\/aggregator:2\.0\.1 \.$/,
    );
    expect(lines[1]).toBe('podman push registry.example.com/sluice-team/sluice/aggregator:2.0.1');
    expect(lines[3]).toBe(
      'podman push registry.example.com/sluice-team/sluice/webhook-dispatcher:2.0.1',
    );
  });

  it('without an engine that answers, fails naming it and builds nothing', () => {
    // docker (where installed) is pointed at a socket nobody listens on.
    const r = images(['--engine', 'docker', '--only', 'dedupe'], {
      DOCKER_HOST: `unix://${join(ROOT, 'tmp', 'no-such-docker.sock')}`,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^images: (docker is installed but its engine does not answer|no container engine: docker is not on PATH).*--dry-run\n$/,
    );
    expect(r.stdout).not.toMatch(/built/);
  });

  it('refuses an unknown option value', () => {
    const r = images(['--dry-run', '--engine', 'rkt']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('images: --engine must be docker or podman, got "rkt"\n');
  });
});
