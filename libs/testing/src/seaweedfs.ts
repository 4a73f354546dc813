// The real S3-compatible server of the tests: SeaweedFS, built once from the Go module
// proxy and started on 127.0.0.1 by scripts/seaweedfs.sh (idempotent: a running one is reused).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers';
import { waitFor } from './wait';
import { Socket } from 'node:net';

const ROOT = join(__dirname, '..', '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'seaweedfs.sh');

export interface S3Env {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

function parseEnv(out: string): S3Env {
  const v = (k: string) => new RegExp(`^export ${k}=(.*)$`, 'm').exec(out)?.[1] ?? '';
  return {
    endpoint: v('S3_ENDPOINT'),
    accessKeyId: v('AWS_ACCESS_KEY_ID'),
    secretAccessKey: v('AWS_SECRET_ACCESS_KEY'),
    region: v('AWS_REGION'),
  };
}

/**
 * Starts the shared SeaweedFS (building it the first time: minutes) and puts its credentials into
 * this process's environment, where the AWS SDK's default chain finds them.
 */
export function seaweedfs(): S3Env {
  execFileSync('bash', [SCRIPT, 'start'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 45 * 60_000,
  });
  const env = parseEnv(execFileSync('bash', [SCRIPT, 'env'], { encoding: 'utf8' }));
  process.env.AWS_ACCESS_KEY_ID = env.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = env.secretAccessKey;
  return env;
}

/** The environment variables a spawned archiver needs for the shared server and `bucket`. */
export function s3ServiceEnv(s3: S3Env, bucket: string): Record<string, string> {
  return {
    ARCHIVER_STORE: 's3',
    ARCHIVER_S3_BUCKET: bucket,
    ARCHIVER_S3_ENDPOINT: s3.endpoint,
    ARCHIVER_S3_FORCE_PATH_STYLE: 'true',
    ARCHIVER_S3_CREATE_BUCKET: 'true',
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
    s.connect(port, '127.0.0.1');
  });
}

/** A SeaweedFS of one test (own ports and data dir) that the test stops and starts: "store down, then back". */
export interface PrivateSeaweedfs {
  endpoint: string;
  start(): Promise<void>;
  /** SIGKILL: an abrupt outage. */
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

export async function privateSeaweedfs(): Promise<PrivateSeaweedfs> {
  seaweedfs(); // builds the binary if needed
  const bin = execFileSync('bash', [SCRIPT, 'bin'], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-seaweedfs-'));
  // gRPC ports are the HTTP ports + 10000: pick ports whose partners are free too.
  const ports: number[] = [];
  while (ports.length < 4) {
    const p = await freePort();
    if (p < 55_000 && !ports.includes(p) && !(await portOpen(p + 10_000))) ports.push(p);
  }
  const [master, volume, filer, s3] = ports as [number, number, number, number];
  let proc: ChildProcess | undefined;
  const stop = async () => {
    const p = proc;
    if (!p) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    await waitFor(
      'private SeaweedFS ports closed',
      async () => !(await portOpen(s3)) && !(await portOpen(master)),
      { timeoutMs: 20_000 },
    );
  };
  const conf = join(dir, 's3.json');
  execFileSync('bash', ['-c', `cp "$(dirname "$1")/../seaweedfs-s3.json" "$2"`, '_', bin, conf]);
  return {
    endpoint: `http://127.0.0.1:${s3}`,
    async start() {
      if (proc) return;
      proc = spawn(
        bin,
        [
          'server',
          '-ip=127.0.0.1',
          '-ip.bind=127.0.0.1',
          `-dir=${dir}`,
          `-master.port=${master}`,
          `-volume.port=${volume}`,
          `-filer.port=${filer}`,
          '-s3',
          `-s3.port=${s3}`,
          `-s3.config=${conf}`,
          '-volume.max=0',
          '-master.volumeSizeLimitMB=64',
        ],
        { stdio: 'ignore' },
      );
      const p = proc;
      p.once('exit', () => {
        if (proc === p) proc = undefined;
      });
      await waitFor(`private SeaweedFS S3 on ${s3}`, () => portOpen(s3), {
        timeoutMs: 60_000,
        intervalMs: 200,
      });
    },
    stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
