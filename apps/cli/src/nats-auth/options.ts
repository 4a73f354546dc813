// The command lines of `sluice nats-auth generate | provision`: the installation's layout (gateway
// regions, stream layout, exporter destinations, durable names) both subcommands build the model from.
import type { ParseArgsOptionsConfig } from 'node:util';
import { z } from '@sluice/config';
import { NAME_TOKEN_PATTERN, type RegionalDeployment } from '@sluice/contracts';
import { intFlag, listFlag, parseCommandLine } from '../args';
import { UsageError } from '../errors';
import {
  DURABLE_SERVICES,
  type DurableService,
  type ExporterSpec,
  type GatewaySpec,
} from './model';
import { DEFAULT_MOUNT_PATH } from './render';

const LAYOUT = `layout (the same for generate and provision)
  --regions <spec,...>        gateway users and the regions each may publish: eu=eu-west+eu-central
                              makes user ingestion-eu; a bare region r makes ingestion-r for r alone
                              (default: one user "ingestion" for every region)
  --layout <shared|per-region>
                              the gateways' INGEST_STREAM_LAYOUT (default shared; per-region needs
                              --regions and keeps each region's raw batches in a stream of its own)
  --exporter <name[=r+r],...> the exporter's destinations (names of its destinations file), with
                              the regions of a destination that filters by region
  --deployments <r[=tag|tag],...>
                              regional deployments (services run with SLUICE_REGION=r and
                              SLUICE_REGION_PLACEMENT): each region gets its own clean and roll-up
                              stream, and its raw stream, placed on servers with the tags (default
                              region:r; r=none for no placement); needs --layout per-region
  --durable <svc=name,...>    durable names other than the defaults, for ${DURABLE_SERVICES.join(', ')}
  --replicas <n>              replicas of every stream provision creates (default 1)`;

export const NATS_AUTH_USAGE = `usage: sluice nats-auth <generate|provision> [options]   (sluice nats-auth <sub> --help)

  generate    one NATS user per service (NKeys) with the subjects it may use: the server's
              authorization block, a Kubernetes Secret per user, local seed and env files
  provision   create the streams and durable consumers of the installation, as the admin user`;

export const GENERATE_USAGE = `usage: sluice nats-auth generate --out <dir> [layout] [options]

Writes, into --out: auth.conf (nats-server "authorization" block with each user's public NKey and
permissions; include it from the server configuration), secrets.yaml (one Kubernetes Secret per user:
its seed and NATS_NKEY_SEED_FILE, NATS_INBOX_PREFIX, NATS_PROVISION=false), and per user <user>.nk
(seed, mode 0600) and <user>.env. Seeds already in --out are kept: delete one to rotate its key.

${LAYOUT}

output
  --out <dir>                 where to write (required; created if missing)
  --k8s-namespace <name>      metadata.namespace of the Secrets (default none)
  --mount-path <dir>          where the pods mount their Secret (default ${DEFAULT_MOUNT_PATH})
  --json                      print the users, streams and consumers as one JSON object
  --help`;

export const PROVISION_USAGE = `usage: sluice nats-auth provision [layout] [--update] [--dry-run] [--json]

Creates, as the user of the environment (NATS_NKEY_SEED_FILE or NATS_CREDS of the admin user), every
stream and durable consumer the services bind to, with the services' default settings. Existing ones
are left as they are unless --update brings them to those settings.

${LAYOUT}

  --update                    bring existing streams and consumers to the planned settings
  --dry-run                   list what would be created; change nothing
  --json                      the result as one JSON object
  --help`;

const token = (what: string) =>
  z
    .string()
    .regex(NAME_TOKEN_PATTERN, `${what} must be lowercase letters, digits, _ or - (at most 64)`);

/** `name=a+b` or `a` (named after itself): a name and regions. */
function namedRegions(item: string, what: string): { name: string; regions: string[] } | string {
  const eq = item.indexOf('=');
  const name = eq < 0 ? item : item.slice(0, eq).trim();
  const regions =
    eq < 0
      ? what === 'exporter'
        ? []
        : [item]
      : item
          .slice(eq + 1)
          .split('+')
          .map((r) => r.trim())
          .filter(Boolean);
  if (!token('a name').safeParse(name).success)
    return `${JSON.stringify(name)} is not a ${what} name`;
  if (eq >= 0 && regions.length === 0) return `${JSON.stringify(item)} names no region after "="`;
  const bad = regions.find((r) => !NAME_TOKEN_PATTERN.test(r));
  if (bad !== undefined) return `${JSON.stringify(bad)} is not a region`;
  return { name, regions };
}

function namedList(what: 'gateway' | 'exporter') {
  return listFlag(1_000).transform((items, ctx) => {
    const out: Array<{ name: string; regions: string[] }> = [];
    for (const item of items) {
      const r = namedRegions(item, what);
      if (typeof r === 'string') {
        ctx.addIssue({ code: 'custom', message: r });
        return z.NEVER;
      }
      if (out.some((o) => o.name === r.name)) {
        ctx.addIssue({ code: 'custom', message: `${what} ${r.name} is named twice` });
        return z.NEVER;
      }
      out.push(r);
    }
    return out;
  });
}

const deploymentList = listFlag(1_000).transform((items, ctx) => {
  const out: RegionalDeployment[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    const region = (eq < 0 ? item : item.slice(0, eq)).trim();
    const raw = eq < 0 ? `region:${region}` : item.slice(eq + 1).trim();
    const tags = raw === 'none' ? [] : raw.split('|').map((x) => x.trim());
    const problem = !NAME_TOKEN_PATTERN.test(region)
      ? `${JSON.stringify(region)} is not a region`
      : tags.some((x) => !/^[^\s,|]+$/.test(x))
        ? `${JSON.stringify(item)}: use region=tag|tag (like eu-west=region:eu-west), or region=none`
        : out.some((d) => d.region === region)
          ? `deployment ${region} is named twice`
          : undefined;
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    out.push({ region, placementTags: tags });
  }
  return out;
});

const durableList = listFlag(100).transform((items, ctx) => {
  const out: Partial<Record<DurableService, string>> = {};
  for (const item of items) {
    const [svc, name, ...rest] = item.split('=').map((s) => s.trim());
    if (!DURABLE_SERVICES.includes(svc as DurableService) || !name || rest.length) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(item)}: use service=name with a service of ${DURABLE_SERVICES.join(', ')}`,
      });
      return z.NEVER;
    }
    if (!token('durable').safeParse(name).success) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(name)} is not a durable name` });
      return z.NEVER;
    }
    out[svc as DurableService] = name;
  }
  return out;
});

const layoutOptions = {
  regions: { type: 'string', multiple: true },
  layout: { type: 'string' },
  exporter: { type: 'string', multiple: true },
  durable: { type: 'string', multiple: true },
  deployments: { type: 'string', multiple: true },
  replicas: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsOptionsConfig;

const layoutShape = {
  regions: namedList('gateway').optional(),
  layout: z.enum(['shared', 'per-region']).default('shared'),
  exporter: namedList('exporter').optional(),
  durable: durableList.optional(),
  deployments: deploymentList.optional(),
  replicas: intFlag({ min: 1, max: 5, default: 1 }),
  json: z.boolean().default(false),
  help: z.boolean().default(false),
};

/** The layout both subcommands take. */
export interface LayoutFlags {
  gateways: GatewaySpec[];
  layout: 'shared' | 'per-region';
  exporters: ExporterSpec[];
  durables: Partial<Record<DurableService, string>>;
  /** Regional deployments; empty: one clean and one roll-up stream for every region. */
  deployments: RegionalDeployment[];
  replicas: number;
  json: boolean;
  help: boolean;
}

function layoutOf(f: z.output<z.ZodObject<typeof layoutShape>>, usage: string): LayoutFlags {
  if (f.layout === 'per-region' && !f.regions?.length) {
    throw new UsageError(
      '--layout per-region needs --regions (the streams are named by region)',
      usage,
    );
  }
  if (f.deployments?.length && f.layout !== 'per-region') {
    throw new UsageError(
      '--deployments needs --layout per-region (a region’s raw batches must stay in its own stream)',
      usage,
    );
  }
  return {
    gateways: f.regions ?? [],
    layout: f.layout,
    exporters: f.exporter ?? [],
    durables: f.durable ?? {},
    deployments: f.deployments ?? [],
    replicas: f.replicas,
    json: f.json,
    help: f.help,
  };
}

export interface GenerateFlags extends LayoutFlags {
  out: string | undefined;
  k8sNamespace: string | undefined;
  mountPath: string;
}

export function parseGenerate(args: readonly string[]): GenerateFlags {
  const { flags } = parseCommandLine(args, {
    options: {
      ...layoutOptions,
      out: { type: 'string' },
      'k8s-namespace': { type: 'string' },
      'mount-path': { type: 'string' },
    },
    schema: z.object({
      ...layoutShape,
      out: z.string().min(1).optional(),
      'k8s-namespace': z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace name')
        .optional(),
      'mount-path': z
        .string()
        .regex(/^\/\S*[^/]$/, 'must be an absolute path without a trailing /')
        .default(DEFAULT_MOUNT_PATH),
    }),
    usage: GENERATE_USAGE,
  });
  const layout = layoutOf(flags, GENERATE_USAGE);
  if (!layout.help && !flags.out) throw new UsageError('--out is required', GENERATE_USAGE);
  return {
    ...layout,
    out: flags.out,
    k8sNamespace: flags['k8s-namespace'],
    mountPath: flags['mount-path'],
  };
}

export interface ProvisionFlags extends LayoutFlags {
  update: boolean;
  dryRun: boolean;
}

export function parseProvision(args: readonly string[]): ProvisionFlags {
  const { flags } = parseCommandLine(args, {
    options: {
      ...layoutOptions,
      update: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
    },
    schema: z.object({
      ...layoutShape,
      update: z.boolean().default(false),
      'dry-run': z.boolean().default(false),
    }),
    usage: PROVISION_USAGE,
  });
  return { ...layoutOf(flags, PROVISION_USAGE), update: flags.update, dryRun: flags['dry-run'] };
}
