// The container image of every app, from the one Dockerfile (build arg APP): which apps, what each
// image is tagged, and the exact build command for docker or podman.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SluiceError } from '@sluice/errors';

export type Engine = 'docker' | 'podman';
export const ENGINES: readonly Engine[] = ['docker', 'podman'];

export class ImagesError extends SluiceError {
  override readonly name = 'ImagesError';
  readonly code = 'images';
}

/** One image to build. */
export interface ImageSpec {
  /** The folder of apps/. */
  app: string;
  /** The app's package.json version, unless overridden. */
  version: string;
  /** `[<registry>/]sluice/<app>:<version>`. */
  tag: string;
}

export interface PlanOptions {
  /** Only these apps (folders of apps/). Default every app with a src/main.ts. */
  only?: readonly string[];
  /** Tag every image with this version instead of its package.json version. */
  version?: string;
  /** Prefixed to the repository name, e.g. `registry.example.com/team`. Default none. */
  registry?: string;
}

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const REGISTRY = /^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._-]+)*$/;

/** Every app with an entry point, each with its image tag. */
export function planImages(root: string, opts: PlanOptions = {}): ImageSpec[] {
  const apps = readdirSync(join(root, 'apps'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, 'apps', d.name, 'src', 'main.ts')))
    .map((d) => d.name)
    .sort();
  const unknown = (opts.only ?? []).filter((a) => !apps.includes(a));
  if (unknown.length > 0)
    throw new ImagesError(`unknown app ${unknown.join(', ')}; the apps are ${apps.join(', ')}`);
  if (opts.version !== undefined && !TAG.test(opts.version))
    throw new ImagesError(`--version "${opts.version}" is not a valid image tag`);
  if (opts.registry !== undefined && !REGISTRY.test(opts.registry))
    throw new ImagesError(`--registry "${opts.registry}" is not a registry/namespace prefix`);
  const prefix = opts.registry ? `${opts.registry}/` : '';
  return apps
    .filter((a) => !opts.only || opts.only.includes(a))
    .map((app) => {
      if (!NAME.test(app)) throw new ImagesError(`apps/${app}: not a valid image name`);
      const pkg = JSON.parse(readFileSync(join(root, 'apps', app, 'package.json'), 'utf8')) as {
        version?: string;
      };
      const version = opts.version ?? pkg.version;
      if (!version || !TAG.test(version))
        throw new ImagesError(`apps/${app}/package.json: version "${version}" is not a valid tag`);
      return { app, version, tag: `${prefix}sluice/${app}:${version}` };
    });
}

/** The build command of one image: argv, from the repository root. */
export function buildCommand(engine: Engine, image: ImageSpec, revision?: string): string[] {
  return [
    engine,
    'build',
    '--file',
    'Dockerfile',
    '--build-arg',
    `APP=${image.app}`,
    '--label',
    `org.opencontainers.image.title=sluice-${image.app}`,
    '--label',
    `org.opencontainers.image.version=${image.version}`,
    ...(revision ? ['--label', `org.opencontainers.image.revision=${revision}`] : []),
    '--tag',
    image.tag,
    '.',
  ];
}

/** The push command of one image. */
export function pushCommand(engine: Engine, image: ImageSpec): string[] {
  return [engine, 'push', image.tag];
}

/** argv as one line a shell runs as is. */
export function shellLine(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./:=@,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** Is `name` an executable on PATH? */
export function onPath(name: string, path = process.env['PATH'] ?? ''): boolean {
  return path.split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, name)));
}

/**
 * The engine to build with: the one asked for, else docker, else podman, if its engine answers
 * (`<engine> info`). Throws an {@link ImagesError} naming what is missing otherwise.
 */
export function detectEngine(wanted?: Engine): Engine {
  const candidates = wanted ? [wanted] : ENGINES;
  const installed = candidates.filter((e) => onPath(e));
  if (installed.length === 0)
    throw new ImagesError(
      `no container engine: ${candidates.join(' or ')} is not on PATH; install one, or print the commands with --dry-run`,
    );
  const failures: string[] = [];
  for (const engine of installed) {
    const r = spawnSync(engine, ['info'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 0) return engine;
    const why = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop();
    failures.push(`${engine} is installed but its engine does not answer (${engine} info: ${why})`);
  }
  throw new ImagesError(`${failures.join('; ')}; start it, or print the commands with --dry-run`);
}

/** The checked-out commit, for the revision label; `undefined` outside a git checkout. */
export function gitRevision(root: string): string | undefined {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 10_000,
  });
  const sha = r.status === 0 ? r.stdout.trim() : '';
  return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
}
