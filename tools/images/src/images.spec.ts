import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildCommand,
  detectEngine,
  ImagesError,
  planImages,
  pushCommand,
  shellLine,
} from './images';

const ROOT = join(__dirname, '..', '..', '..');

describe('planImages', () => {
  it('has one image per app with an entry point, tagged with its package.json version', () => {
    const apps = readdirSync(join(ROOT, 'apps')).filter((a) =>
      existsSync(join(ROOT, 'apps', a, 'src', 'main.ts')),
    );
    const plan = planImages(ROOT);
    expect(plan.map((i) => i.app)).toEqual([...apps].sort());
    for (const i of plan) {
      const { version } = JSON.parse(
        readFileSync(join(ROOT, 'apps', i.app, 'package.json'), 'utf8'),
      ) as { version: string };
      expect(i).toEqual({ app: i.app, version, tag: `sluice/${i.app}:${version}` });
    }
    expect(plan.map((i) => i.app)).toEqual(expect.arrayContaining(['aggregator', 'dedupe']));
  });

  it('narrows to --only, and overrides version and registry', () => {
    expect(
      planImages(ROOT, {
        only: ['dedupe', 'aggregator'],
        version: '1.4.0-rc.1',
        registry: 'registry.example.com:5000/data',
      }),
    ).toEqual([
      {
        app: 'aggregator',
        version: '1.4.0-rc.1',
        tag: 'registry.example.com:5000/data/sluice/aggregator:1.4.0-rc.1',
      },
      {
        app: 'dedupe',
        version: '1.4.0-rc.1',
        tag: 'registry.example.com:5000/data/sluice/dedupe:1.4.0-rc.1',
      },
    ]);
  });

  it('refuses an unknown app, a tag and a registry an engine would refuse', () => {
    expect(() => planImages(ROOT, { only: ['aggregater'] })).toThrow(
      /unknown app aggregater; the apps are .*aggregator/,
    );
    expect(() => planImages(ROOT, { version: 'v1 beta' })).toThrow(ImagesError);
    expect(() => planImages(ROOT, { registry: 'https://registry.example.com' })).toThrow(
      ImagesError,
    );
  });
});

describe('commands', () => {
  const image = { app: 'dedupe', version: '0.3.0', tag: 'sluice/dedupe:0.3.0' };

  it('builds from the one Dockerfile with the app as build arg, labelled and tagged', () => {
    expect(buildCommand('podman', image, 'a'.repeat(40))).toEqual([
      'podman',
      'build',
      '--file',
      'Dockerfile',
      '--build-arg',
      'APP=dedupe',
      '--label',
      'org.opencontainers.image.title=sluice-dedupe',
      '--label',
      'org.opencontainers.image.version=0.3.0',
      '--label',
      `org.opencontainers.image.revision=${'a'.repeat(40)}`,
      '--tag',
      'sluice/dedupe:0.3.0',
      '.',
    ]);
    expect(buildCommand('docker', image)).not.toContain('org.opencontainers.image.revision=');
    expect(pushCommand('docker', image)).toEqual(['docker', 'push', 'sluice/dedupe:0.3.0']);
  });

  it('prints a line a shell runs as is', () => {
    expect(shellLine(['docker', 'build', '--tag', 'sluice/x:1', '.'])).toBe(
      'docker build --tag sluice/x:1 .',
    );
    expect(shellLine(['echo', "it's here", 'a b'])).toBe(`echo 'it'\\''s here' 'a b'`);
  });
});

describe('detectEngine', () => {
  it('names what is missing when no engine is on PATH', () => {
    const path = process.env['PATH'];
    process.env['PATH'] = '/nonexistent';
    try {
      expect(() => detectEngine()).toThrow(
        'no container engine: docker or podman is not on PATH; install one, or print the commands with --dry-run',
      );
      expect(() => detectEngine('podman')).toThrow(/^no container engine: podman is not on PATH/);
    } finally {
      process.env['PATH'] = path;
    }
  });
});
