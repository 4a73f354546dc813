// The generated files: the server's `authorization` block (public NKeys and permissions only), one
// Kubernetes Secret per user (its seed and the settings its service needs), and a local env file.
import type { UserAccess } from './model';

/** A user with its key pair, as written out. */
export interface KeyedUser extends UserAccess {
  publicKey: string;
  seed: string;
}

/** Where a Secret's seed is mounted in the pod (`--mount-path`). */
export const DEFAULT_MOUNT_PATH = '/var/run/secrets/sluice/nats';
/** The seed's key in each Secret (and file name under the mount path). */
export const SEED_KEY = 'seed.nk';

const q = (s: string) => JSON.stringify(s);

function list(items: readonly string[], indent: string): string {
  return `[\n${items.map((s) => `${indent}  ${q(s)}`).join(',\n')}\n${indent}]`;
}

/**
 * The `authorization { users = [...] }` block of nats-server's configuration, to `include` from it.
 * Holds no secret: NKey users authenticate by signing the server's nonce with their seed.
 */
export function renderServerAuth(
  users: readonly KeyedUser[],
  meta: { namespace: string; generatedAt: string },
): string {
  const lines = [
    `# Sluice NATS users, one per service (sluice nats-auth generate, ${meta.generatedAt}),`,
    `# namespace ${meta.namespace ? `"${meta.namespace}"` : 'none (canonical names)'}. Include this file from the`,
    '# server configuration (include "auth.conf"); it holds public keys only. Each user may publish',
    '# and subscribe only where listed (deny wins over allow); only admin manages streams and',
    '# consumers. See docs/SECURITY.md.',
    'authorization {',
    '  users = [',
  ];
  for (const u of users) {
    lines.push(`    # ${u.user}: ${u.role}`);
    lines.push('    {');
    lines.push(`      nkey: ${q(u.publicKey)}`);
    lines.push('      permissions: {');
    lines.push('        publish: {');
    lines.push(`          allow: ${list(u.publish.allow, '          ')}`);
    if (u.publish.deny.length) lines.push(`          deny: ${list(u.publish.deny, '          ')}`);
    lines.push('        }');
    lines.push('        subscribe: {');
    lines.push(`          allow: ${list(u.subscribe.allow, '          ')}`);
    if (u.subscribe.deny.length)
      lines.push(`          deny: ${list(u.subscribe.deny, '          ')}`);
    lines.push('        }');
    lines.push('      }');
    lines.push('    }');
  }
  lines.push('  ]', '}', '');
  return lines.join('\n');
}

/** The environment a service connects with as `u` (the seed at `seedPath`). */
export function serviceEnv(u: KeyedUser, seedPath: string): Record<string, string> {
  return {
    NATS_NKEY_SEED_FILE: seedPath,
    ...(u.inboxPrefix ? { NATS_INBOX_PREFIX: u.inboxPrefix } : {}),
    // Only admin creates streams and consumers; every service binds to what exists.
    NATS_PROVISION: u.user === 'admin' ? 'true' : 'false',
  };
}

/** `KEY=value` lines. */
export function renderEnvFile(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')
    .concat('\n');
}

/** Name of the Secret of `user`: `sluice-nats-<user>`, or `sluice-<ns>-nats-<user>` in a namespace. */
export function secretName(user: string, namespace: string): string {
  return namespace ? `sluice-${namespace}-nats-${user}` : `sluice-nats-${user}`;
}

/**
 * One Secret per user: the seed (`seed.nk`, mounted at `mountPath`) and the variables its service
 * needs (`envFrom`). YAML documents separated by `---`.
 */
export function renderSecrets(
  users: readonly KeyedUser[],
  opts: { namespace: string; k8sNamespace?: string | undefined; mountPath: string },
): string {
  const docs = users.map((u) => {
    const env = serviceEnv(u, `${opts.mountPath}/${SEED_KEY}`);
    return [
      `# ${u.user}: ${u.role}`,
      'apiVersion: v1',
      'kind: Secret',
      'metadata:',
      `  name: ${secretName(u.user, opts.namespace)}`,
      ...(opts.k8sNamespace ? [`  namespace: ${opts.k8sNamespace}`] : []),
      '  labels:',
      '    app.kubernetes.io/part-of: sluice',
      `    sluice.io/nats-user: ${u.user}`,
      'type: Opaque',
      'stringData:',
      `  ${SEED_KEY}: ${q(u.seed)}`,
      ...Object.entries(env).map(([k, v]) => `  ${k}: ${q(v)}`),
    ].join('\n');
  });
  return `${docs.join('\n---\n')}\n`;
}
