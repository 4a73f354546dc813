// `npm run images [-- options]`: builds the container image of every app from the one Dockerfile,
// tagged `sluice/<app>:<version>` (the app's package.json version), with docker or podman.
//   --dry-run            print the build commands and build nothing (no engine needed)
//   --only a,b           only these apps
//   --version <tag>      tag every image with this version
//   --registry <prefix>  tag `<prefix>/sluice/<app>:<version>`
//   --engine docker|podman
//   --push               push each image after building it
// Builds run one after another (they share the Dockerfile's dependency stages); the first failure
// stops the run, which then names what was built and what was not.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildCommand,
  detectEngine,
  ENGINES,
  gitRevision,
  ImagesError,
  planImages,
  pushCommand,
  shellLine,
  type Engine,
} from './images';

const ROOT = join(__dirname, '..', '..', '..');
/** One image build, dependency stages included, on a cold cache. */
const BUILD_TIMEOUT_MS = 30 * 60_000;

function main(): number {
  const { values } = parseArgs({
    options: {
      'dry-run': { type: 'boolean', default: false },
      only: { type: 'string' },
      version: { type: 'string' },
      registry: { type: 'string' },
      engine: { type: 'string' },
      push: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const engineArg = values.engine;
  if (engineArg !== undefined && !ENGINES.includes(engineArg as Engine))
    throw new ImagesError(`--engine must be ${ENGINES.join(' or ')}, got "${engineArg}"`);
  const images = planImages(ROOT, {
    ...(values.only ? { only: values.only.split(',').map((s) => s.trim()) } : {}),
    ...(values.version ? { version: values.version } : {}),
    ...(values.registry ? { registry: values.registry } : {}),
  });
  const revision = gitRevision(ROOT);

  if (values['dry-run']) {
    const engine = (engineArg as Engine | undefined) ?? 'docker';
    console.log(
      `# ${images.length} image${images.length === 1 ? '' : 's'}; run from ${ROOT}; nothing was built (--dry-run)`,
    );
    for (const image of images) {
      console.log(shellLine(buildCommand(engine, image, revision)));
      if (values.push) console.log(shellLine(pushCommand(engine, image)));
    }
    return 0;
  }

  const engine = detectEngine(engineArg as Engine | undefined);
  const built: string[] = [];
  for (const image of images) {
    for (const argv of [
      buildCommand(engine, image, revision),
      ...(values.push ? [pushCommand(engine, image)] : []),
    ]) {
      console.log(`$ ${shellLine(argv)}`);
      const r = spawnSync(argv[0]!, argv.slice(1), {
        cwd: ROOT,
        stdio: 'inherit',
        timeout: BUILD_TIMEOUT_MS,
        env: { ...process.env, DOCKER_BUILDKIT: '1' },
      });
      if (r.status !== 0) {
        const rest = images.slice(images.indexOf(image)).map((i) => i.tag);
        console.error(
          `failed: ${shellLine(argv)} (${r.error?.message ?? `exit ${r.status ?? r.signal}`}); finished: ${built.join(', ') || 'none'}; not finished: ${rest.join(', ')}`,
        );
        return 1;
      }
    }
    built.push(image.tag);
  }
  console.log(`built ${built.length} images with ${engine}: ${built.join(', ')}`);
  return 0;
}

try {
  process.exit(main());
} catch (err) {
  console.error(err instanceof ImagesError ? `images: ${err.message}` : err);
  process.exit(err instanceof ImagesError ? 2 : 1);
}
