// `sluice nats-auth generate`: keys (kept across runs) and the files of every user.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import type { CliContext } from '../context';
import { GENERATE_USAGE, parseGenerate } from './options';
import { buildAccessModel, type UserAccess } from './model';
import {
  renderEnvFile,
  renderSecrets,
  renderServerAuth,
  serviceEnv,
  type KeyedUser,
} from './render';
import { NatsAuthError } from './errors';

/** The seed in `<dir>/<user>.nk` when there is a valid user seed there, else a new one. */
async function keyOf(dir: string, user: string): Promise<{ seed: string; reused: boolean }> {
  const file = join(dir, `${user}.nk`);
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return { seed: new TextDecoder().decode(nkeys.createUser().getSeed()), reused: false };
  }
  try {
    const kp = nkeys.fromSeed(new TextEncoder().encode(text));
    if (!kp.getPublicKey().startsWith('U')) throw new Error('not a user seed');
  } catch (err) {
    throw new NatsAuthError(
      `${file} does not hold a NATS user seed (SU...): ${(err as Error).message}; delete it to make a new key`,
    );
  }
  return { seed: text, reused: true };
}

/** Writes `content` through a temporary file, so a reader never sees half a file. */
async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

function keyed(u: UserAccess, seed: string): KeyedUser {
  const kp = nkeys.fromSeed(new TextEncoder().encode(seed));
  return { ...u, seed, publicKey: kp.getPublicKey() };
}

export async function runGenerate(args: string[], ctx: CliContext): Promise<number> {
  const f = parseGenerate(args);
  if (f.help) {
    ctx.out.write(`${GENERATE_USAGE}\n`);
    return 0;
  }
  const dir = resolve(f.out!);
  const model = buildAccessModel({ ...f, topology: ctx.topology });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const users: KeyedUser[] = [];
  let reused = 0;
  for (const u of model.users) {
    const key = await keyOf(dir, u.user);
    if (key.reused) reused++;
    users.push(keyed(u, key.seed));
  }
  for (const u of users) {
    const seedFile = join(dir, `${u.user}.nk`);
    await writeAtomic(seedFile, `${u.seed}\n`, 0o600);
    await writeAtomic(join(dir, `${u.user}.env`), renderEnvFile(serviceEnv(u, seedFile)), 0o600);
  }
  const namespace = ctx.topology.namespace;
  await writeAtomic(
    join(dir, 'auth.conf'),
    renderServerAuth(users, { namespace, generatedAt: new Date().toISOString() }),
    0o644,
  );
  await writeAtomic(
    join(dir, 'secrets.yaml'),
    renderSecrets(users, { namespace, k8sNamespace: f.k8sNamespace, mountPath: f.mountPath }),
    0o600,
  );
  for (const w of model.warnings) ctx.err.write(`warning: ${w}\n`);
  if (f.json) {
    ctx.out.write(
      `${JSON.stringify({
        out: dir,
        namespace,
        users: users.map((u) => ({
          user: u.user,
          role: u.role,
          publicKey: u.publicKey,
          inboxPrefix: u.inboxPrefix ?? null,
          publish: u.publish,
          subscribe: u.subscribe,
        })),
        streams: model.streams.map((s) => s.name),
        consumers: model.consumers.map((c) => ({
          stream: c.stream,
          durable: c.spec.durable,
          user: c.user,
        })),
        warnings: model.warnings,
      })}\n`,
    );
  } else {
    ctx.out.write(
      `${users.length} users (${users.length - reused} new keys, ${reused} kept) written to ${dir}:\n` +
        '  auth.conf      include from the nats-server configuration\n' +
        '  secrets.yaml   one Kubernetes Secret per user (seed.nk and its NATS_* variables)\n' +
        '  <user>.nk      seeds (keep secret); <user>.env the variables for a local run\n' +
        `users: ${users.map((u) => u.user).join(', ')}\n` +
        'next: reload nats-server, then `sluice nats-auth provision` with the admin user (admin.env)\n',
    );
  }
  return 0;
}
