// The Helm chart (deploy/helm/sluice) rendered by a real helm and validated against Kubernetes'
// OpenAPI v3 spec and the KEDA / Prometheus operator CRDs, all from Go modules (scripts/lib.sh
// ensure_deploy_tools builds and caches them on first use: a few minutes on an empty cache).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ManifestValidator } from './validate';

const ROOT = join(__dirname, '..', '..', '..');
const CHART = join(ROOT, 'deploy', 'helm', 'sluice');
const PROD = join(ROOT, 'deploy', 'values-production.yaml');
const SERVICES = [
  'aggregator',
  'archiver',
  'console',
  'dedupe',
  'exporter',
  'ingestion',
  'mongo-capture',
  'watch',
  'webhook-dispatcher',
];

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};

let helm = '';
/** The Kubernetes version of the schemas, which helm renders for. */
let kubeVersion = '';
let validator: ManifestValidator;

function helmRun(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(helm, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function render(...extra: string[]): string {
  const r = helmRun([
    'template',
    'sluice',
    CHART,
    '--namespace',
    'sluice',
    '--kube-version',
    kubeVersion,
    ...extra,
  ]);
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return r.stdout;
}

const objectsOf = (yaml: string): Obj[] =>
  parseAllDocuments(yaml)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const named = (objs: Obj[], kind: string, name: string) =>
  objs.find((o) => o.kind === kind && o.metadata.name === name)!;

beforeAll(() => {
  const out = execFileSync(
    'bash',
    [
      '-c',
      'source scripts/lib.sh && ensure_deploy_tools && printf "%s\\n%s\\n%s\\n" "$HELM_BIN" "$K8S_SCHEMA_DIR" "$K8S_VERSION"',
    ],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [h, schemas, version] = out.trim().split('\n');
  helm = h!;
  kubeVersion = version!;
  validator = new ManifestValidator(schemas!);
}, 3_600_000);

describe('the validator', () => {
  const deployment = (container: Record<string, unknown>) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd' },
    spec: {
      selector: { matchLabels: { a: 'b' } },
      template: { metadata: { labels: { a: 'b' } }, spec: { containers: [container] } },
    },
  });

  it('accepts a valid object and rejects unknown fields, wrong types and unknown kinds', () => {
    const ok = validator.validateObjects([deployment({ name: 'c', image: 'i' })]);
    expect(ok.issues).toEqual([]);

    const bad = validator.validateObjects([
      deployment({
        name: 'c',
        image: 'i',
        imagePullPolicyy: 'Always',
        ports: [{ containerPort: '80' }],
      }),
      { apiVersion: 'v1', kind: 'Widget', metadata: { name: 'w' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'm', labels: { n: 1 } } },
    ]);
    expect(bad.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          object: 'Deployment/d',
          path: '/spec/template/spec/containers/0',
          message: 'unknown field "imagePullPolicyy"',
        }),
        expect.objectContaining({
          path: '/spec/template/spec/containers/0/ports/0/containerPort',
          message: 'must be integer',
        }),
        expect.objectContaining({
          object: 'Widget/w',
          message: expect.stringMatching(/no schema/),
        }),
        expect.objectContaining({
          object: 'ConfigMap/m',
          path: '/metadata/labels/n',
          message: 'must be string',
        }),
      ]),
    );
  });

  it('checks custom resources against their CRD, with ObjectMeta for metadata', () => {
    const so = (
      spec: Record<string, unknown>,
      metadata: Record<string, unknown> = { name: 's' },
    ) => ({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata,
      spec,
    });
    const target = deployment({ name: 'c', image: 'i' });
    const trigger = { type: 'nats-jetstream', metadata: { stream: 'A', consumer: 'b' } };
    expect(
      validator.validateObjects([
        target,
        so({ scaleTargetRef: { name: 'd' }, triggers: [trigger] }),
      ]).issues,
    ).toEqual([]);
    const issues = validator.validateObjects([
      target,
      so(
        { scaleTargetRef: { name: 'e' }, triggers: [{ ...trigger, lagThreshold: 5 }] },
        { name: 's', lables: {} },
      ),
      so({ triggers: [trigger] }, { name: 't' }),
    ]).issues;
    expect(issues).toEqual(
      expect.arrayContaining([
        { object: 'ScaledObject/s', path: '/metadata', message: 'unknown field "lables"' },
        {
          object: 'ScaledObject/s',
          path: '/spec/triggers/0',
          message: 'unknown field "lagThreshold"',
        },
        {
          object: 'ScaledObject/s',
          path: '/spec/scaleTargetRef',
          message: 'Deployment/e is not in the set',
        },
        expect.objectContaining({
          object: 'ScaledObject/t',
          path: '/spec',
          message: "must have required property 'scaleTargetRef'",
        }),
      ]),
    );
  });
});

describe('deploy/helm/sluice', () => {
  it('passes helm lint with the default and the production values', () => {
    for (const extra of [[], ['-f', PROD]]) {
      const r = helmRun(['lint', CHART, '--strict', ...extra]);
      expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({
        status: 0,
        out: expect.any(String),
      });
    }
  });

  it.each([
    ['default values', [] as string[]],
    ['production values', ['-f', PROD]],
  ])('renders manifests that validate (%s)', (_label, extra) => {
    const yaml = render(...extra);
    const report = validator.validateYaml(yaml);
    expect(report.issues).toEqual([]);
    const objs = objectsOf(yaml);
    expect(report.objects).toBe(objs.length);
    const names = SERVICES.map((s) => `sluice-${s}`);
    for (const kind of ['Deployment', 'PodDisruptionBudget', 'ServiceMonitor']) {
      expect(
        byKind(objs, kind)
          .map((o) => o.metadata.name)
          .sort(),
      ).toEqual(names);
    }
    // Production exposes the gateway through a LoadBalancer of its own, without the ops port.
    const external = extra.length > 0 ? ['sluice-ingestion-external'] : [];
    expect(
      byKind(objs, 'Service')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual([...names, ...external].sort());
    // Default deny, then one policy per service.
    expect(
      byKind(objs, 'NetworkPolicy')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['sluice-default-deny', ...names].sort());
    expect(byKind(objs, 'Secret')).toEqual([]);
  });

  it('wires each service as docs/services describe it', () => {
    const objs = objectsOf(render('-f', PROD));
    const ingestion = named(objs, 'Deployment', 'sluice-ingestion');
    const c = ingestion.spec['template'].spec.containers[0];
    expect(c.image).toBe('registry.example.com/data/sluice/ingestion:0.1.0');
    expect(c.startupProbe).toMatchObject({ grpc: { port: 50051 } });
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'ops' } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'ops' } });
    expect(named(objs, 'Service', 'sluice-ingestion').spec['ports']).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'grpc', port: 50051, appProtocol: 'grpc' }),
      ]),
    );
    const lb = named(objs, 'Service', 'sluice-ingestion-external');
    expect(lb.spec['type']).toBe('LoadBalancer');
    expect(lb.spec['ports'].map((p: { name: string }) => p.name)).toEqual(['grpc', 'http']);

    // Every service mounts its own NATS user's Secret by reference.
    for (const s of SERVICES) {
      const pod = named(objs, 'Deployment', `sluice-${s}`).spec['template'].spec;
      expect(pod.volumes).toEqual(
        expect.arrayContaining([
          {
            name: 'nats-seed',
            secret: expect.objectContaining({ secretName: `sluice-nats-${s}` }),
          },
        ]),
      );
      expect(pod.containers[0].envFrom).toEqual(
        expect.arrayContaining([{ secretRef: { name: `sluice-nats-${s}` } }]),
      );
    }
    expect(
      named(objs, 'Deployment', 'sluice-archiver').spec['template'].spec
        .terminationGracePeriodSeconds,
    ).toBe(90);

    // Migrations: Helm hooks for the two services with a schema, which then only check it.
    const jobs = byKind(objs, 'Job');
    expect(jobs.map((j) => j.metadata.name).sort()).toEqual([
      'sluice-aggregator-migrate',
      'sluice-webhook-dispatcher-migrate',
    ]);
    for (const j of jobs) {
      expect(j.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    }
    expect(jobs[0]!.spec['template'].spec.containers[0].command).toEqual([
      'node',
      'dist/apps/aggregator/migrate.js',
    ]);

    // KEDA: lag of each consumer's durables; the archiver (one lease holder) and the console (no
    // durable) are not scaled.
    const scaled = byKind(objs, 'ScaledObject');
    expect(scaled.map((o) => o.metadata.name).sort()).toEqual(
      SERVICES.filter((n) => n !== 'archiver' && n !== 'console').map((n) => `sluice-${n}`),
    );
    const lag = (name: string) =>
      named(objs, 'ScaledObject', name)
        .spec['triggers'].filter((t: { type: string }) => t.type === 'nats-jetstream')
        .map(
          (t: { metadata: { stream: string; consumer: string } }) =>
            `${t.metadata.stream}/${t.metadata.consumer}`,
        );
    expect(lag('sluice-dedupe')).toEqual(['TELEMETRY_RAW_EU_WEST/dedupe']);
    expect(lag('sluice-webhook-dispatcher')).toEqual([
      'TELEMETRY/webhook-dispatcher-clean',
      'ROLLUPS/webhook-dispatcher-rollups',
      'WEBHOOK_DELIVERIES/webhook-dispatcher-sender',
    ]);
    expect(lag('sluice-watch')).toEqual(['TELEMETRY/watch-clean', 'ROLLUPS/watch-rollups']);
    // A scaled Deployment leaves its replica count to KEDA; the archiver keeps its own.
    expect(named(objs, 'Deployment', 'sluice-dedupe').spec['replicas']).toBeUndefined();
    expect(named(objs, 'Deployment', 'sluice-archiver').spec['replicas']).toBe(3);
  });

  it('points the console at this release: query API, admin API and every ops port, policies open', () => {
    const objs = objectsOf(render('-f', PROD));
    const c = named(objs, 'Deployment', 'sluice-console').spec['template'].spec.containers[0];
    const env = Object.fromEntries(
      (c.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      CONSOLE_HOST: '0.0.0.0',
      CONSOLE_QUERY_URL: 'http://sluice-aggregator:9480',
      CONSOLE_ADMIN_URL: 'http://sluice-webhook-dispatcher:8090',
    });
    expect(env['CONSOLE_TARGETS']!.split(',')).toEqual(
      SERVICES.filter((s) => s !== 'console').map((s) => `${s}=http://sluice-${s}:9400`),
    );
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'ops' } });
    expect(named(objs, 'Service', 'sluice-console').spec['ports']).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'http', port: 9490 })]),
    );

    const consolePods = {
      podSelector: {
        matchLabels: {
          'app.kubernetes.io/name': 'console',
          'app.kubernetes.io/instance': 'sluice',
          'app.kubernetes.io/component': 'server',
        },
      },
    };
    type Rule = { ports: Array<{ port: number | string }>; from?: unknown[]; to?: unknown[] };
    const policy = (s: string) => named(objs, 'NetworkPolicy', `sluice-${s}`).spec;
    // Every other service lets the console read its ops port…
    for (const s of SERVICES.filter((n) => n !== 'console')) {
      const ops = (policy(s)['ingress'] as Rule[]).find((r) => r.ports[0]!.port === 'ops')!;
      expect(ops.from).toContainEqual(consolePods);
    }
    // …and the console may reach them, the query API and the admin API.
    const egressPorts = (policy('console')['egress'] as Rule[]).flatMap((r) =>
      r.ports.map((p) => p.port),
    );
    expect(egressPorts).toEqual(expect.arrayContaining([9400, 9480, 8090]));
    // An override of one of those variables wins over the release's address.
    const own = objectsOf(
      render('--set', 'services.console.env.CONSOLE_QUERY_URL=https://query.example.com'),
    );
    const ownEnv = (
      named(own, 'Deployment', 'sluice-console').spec['template'].spec.containers[0].env as Array<{
        name: string;
        value: string;
      }>
    ).filter((e) => e.name === 'CONSOLE_QUERY_URL');
    expect(ownEnv).toEqual([{ name: 'CONSOLE_QUERY_URL', value: 'https://query.example.com' }]);
  });

  it('rejects a broken values override: validation names each mistake', () => {
    const yaml = render(
      '--set-json',
      'defaults.securityContext={"readOnlyRootFS":true}',
      '--set-json',
      'services.dedupe.podAnnotations={"sluice/owner":7}',
      '--set',
      'services.archiver.terminationGracePeriodSeconds=ninety',
    );
    const issues = validator.validateYaml(yaml).issues;
    expect(issues).toEqual(
      expect.arrayContaining([
        {
          object: 'Deployment/sluice-ingestion',
          path: '/spec/template/spec/containers/0/securityContext',
          message: 'unknown field "readOnlyRootFS"',
        },
        {
          object: 'Deployment/sluice-dedupe',
          path: '/spec/template/metadata/annotations/sluice~1owner',
          message: 'must be string',
        },
        {
          object: 'Deployment/sluice-archiver',
          path: '/spec/template/spec/terminationGracePeriodSeconds',
          message: 'must be integer',
        },
      ]),
    );
    // …and the command line CI runs says so with exit 1.
    const cli = spawnSync(
      process.execPath,
      [require.resolve('tsx/cli'), join(__dirname, 'main.ts'), '--schemas', schemaDir(), '-'],
      { input: yaml, encoding: 'utf8' },
    );
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/Deployment\/sluice-ingestion .*unknown field "readOnlyRootFS"/);
  });

  it('refuses a store that networkPolicy.stores does not define', () => {
    const r = helmRun([
      'template',
      'sluice',
      CHART,
      '--kube-version',
      kubeVersion,
      '--set-json',
      'services.dedupe.egress=["redis","kafka"]',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/services\.dedupe\.egress names "kafka"/);
  });

  it('refuses a serviceUrls entry naming a disabled service or a missing port', () => {
    const off = helmRun([
      'template',
      'sluice',
      CHART,
      '--kube-version',
      kubeVersion,
      '--set',
      'services.aggregator.enabled=false',
    ]);
    expect(off.status).not.toBe(0);
    expect(off.stderr).toMatch(
      /services\.console\.serviceUrls names "aggregator:api", but service "aggregator" is not enabled/,
    );
    const port = helmRun([
      'template',
      'sluice',
      CHART,
      '--kube-version',
      kubeVersion,
      '--set',
      'services.console.serviceUrls.CONSOLE_ADMIN_URL=webhook-dispatcher:grpc',
    ]);
    expect(port.status).not.toBe(0);
    expect(port.stderr).toMatch(/webhook-dispatcher has no port "grpc"/);
  });
});

describe('deploy/nats-values.yaml', () => {
  it('runs the nats-server the tests name, 3 clustered JetStream servers with region tags', () => {
    const lib = readFileSync(join(ROOT, 'scripts', 'lib.sh'), 'utf8');
    const version = /^NATS_CLUSTER_VERSION=v(\S+)$/m.exec(lib)![1];
    const v = parse(readFileSync(join(ROOT, 'deploy', 'nats-values.yaml'), 'utf8')) as {
      container: { image: { repository: string; tag: string } };
      config: {
        cluster: { enabled: boolean; replicas: number };
        jetstream: { enabled: boolean };
        merge: { server_tags: string[] };
      };
    };
    expect(v.container.image).toEqual({ repository: 'nats', tag: `${version}-alpine` });
    expect(v.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(v.config.jetstream.enabled).toBe(true);
    expect(v.config.merge.server_tags).toEqual([expect.stringMatching(/^region:[a-z0-9-]+$/)]);
  });
});

function schemaDir(): string {
  return execFileSync('bash', ['-c', 'source scripts/lib.sh && k8s_schema_dir'], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim();
}
