// Offline schema validation of Kubernetes manifests (the output of `helm template`), the way
// `kubectl apply --validate=strict` would judge them, without a cluster or the internet:
//   - built-in kinds against Kubernetes' OpenAPI v3 spec (k8s.io/kubernetes api/openapi-spec/v3);
//   - custom resources (ScaledObject, ServiceMonitor, …) against the openAPIV3Schema of their CRDs;
//   - strict: a field the schema does not declare is an error (unless the schema preserves unknown
//     fields), as are wrong types, missing required fields, kinds no schema knows and duplicates;
//   - plus references inside the set that no schema sees: a Service's named target ports, a probe's
//     named port, a ScaledObject's or PodDisruptionBudget's target.
// The schemas come from Go modules (scripts/lib.sh ensure_deploy_tools); ajv 8 validates.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

/** One problem of one manifest. */
export interface Issue {
  /** `Kind/name` of the object, or `document N` when it has none. */
  object: string;
  /** JSON pointer into the object ('' for the object itself). */
  path: string;
  message: string;
}

/** The outcome of validating a stream of manifests. */
export interface Report {
  /** Objects seen (empty documents are skipped). */
  objects: number;
  issues: Issue[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/**
 * Makes a schema strict the way `--validate=strict` is: an object schema that lists properties
 * and says nothing about others gets `additionalProperties: false`, unless it carries
 * `x-kubernetes-preserve-unknown-fields` (or combines sub-schemas, where the rule would wrongly
 * apply to each part alone).
 */
function strictify(node: unknown): void {
  if (Array.isArray(node)) {
    for (const n of node) strictify(n);
    return;
  }
  if (!isObject(node)) return;
  if (
    isObject(node['properties']) &&
    !('additionalProperties' in node) &&
    node['x-kubernetes-preserve-unknown-fields'] !== true &&
    !('allOf' in node) &&
    !('anyOf' in node) &&
    !('oneOf' in node)
  ) {
    node['additionalProperties'] = false;
  }
  for (const [k, v] of Object.entries(node)) {
    // `properties` maps names to schemas, and a property may be called `properties`.
    if (k === 'properties' && isObject(v)) {
      for (const s of Object.values(v)) strictify(s);
    } else if (k !== 'enum' && k !== 'default' && k !== 'example') {
      strictify(v);
    }
  }
}

/** Validates manifests against the schemas of one folder (see ensure_deploy_tools). */
export class ManifestValidator {
  private readonly ajv = new Ajv({
    strict: false,
    allErrors: true,
    validateFormats: false,
    validateSchema: false,
    logger: false,
  });
  /** `apiVersion Kind` → the schema's reference. */
  private readonly refs = new Map<string, string>();
  private readonly compiled = new Map<string, ValidateFunction>();
  private objectMetaRef = '';

  /**
   * @param schemaDir folder with `openapi-v3/*.json` (Kubernetes' OpenAPI v3 documents) and
   *   `crds/*.yaml` (CustomResourceDefinitions)
   */
  constructor(schemaDir: string) {
    const oaDir = join(schemaDir, 'openapi-v3');
    for (const file of readdirSync(oaDir).filter((f) => f.endsWith('.json'))) {
      const doc = JSON.parse(readFileSync(join(oaDir, file), 'utf8')) as Json;
      const schemas = (isObject(doc['components']) ? doc['components']['schemas'] : undefined) as
        Json | undefined;
      if (!schemas) continue;
      const id = `k8s:${file}`;
      strictify(schemas);
      this.ajv.addSchema({ $id: id, components: { schemas } });
      for (const [name, schema] of Object.entries(schemas)) {
        if (name === OBJECT_META && !this.objectMetaRef) {
          this.objectMetaRef = `${id}#/components/schemas/${name}`;
        }
        const gvks = isObject(schema) ? schema['x-kubernetes-group-version-kind'] : undefined;
        if (!Array.isArray(gvks)) continue;
        for (const g of gvks as { group: string; version: string; kind: string }[]) {
          const apiVersion = g.group ? `${g.group}/${g.version}` : g.version;
          const key = `${apiVersion} ${g.kind}`;
          // The same kind appears in several documents (e.g. meta/v1 types); the first wins.
          if (!this.refs.has(key)) this.refs.set(key, `${id}#/components/schemas/${name}`);
        }
      }
    }
    if (!this.objectMetaRef) throw new Error(`no ${OBJECT_META} in ${oaDir}`);
    const crdDir = join(schemaDir, 'crds');
    for (const file of readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f))) {
      for (const d of parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))) {
        this.addCrd(d.toJS() as unknown, `crd:${file}`);
      }
    }
  }

  private addCrd(crd: unknown, id: string): void {
    if (!isObject(crd) || crd['kind'] !== 'CustomResourceDefinition' || !isObject(crd['spec'])) {
      return;
    }
    const spec = crd['spec'];
    const group = spec['group'] as string;
    const kind = (spec['names'] as Json)['kind'] as string;
    for (const v of (spec['versions'] as Json[]) ?? []) {
      const schema = (v['schema'] as Json | undefined)?.['openAPIV3Schema'];
      if (!isObject(schema)) continue;
      strictify(schema);
      // The API server checks metadata as ObjectMeta; a CRD only says `type: object`.
      const props = (schema['properties'] ?? {}) as Json;
      props['metadata'] = { $ref: this.objectMetaRef };
      schema['properties'] = props;
      const ref = `${id}/${v['name'] as string}`;
      this.ajv.addSchema({ ...schema, $id: ref });
      this.refs.set(`${group}/${v['name'] as string} ${kind}`, ref);
    }
  }

  /** The `apiVersion Kind` pairs this validator has a schema for. */
  kinds(): string[] {
    return [...this.refs.keys()].sort();
  }

  private validatorFor(key: string): ValidateFunction | undefined {
    const ref = this.refs.get(key);
    if (!ref) return undefined;
    let fn = this.compiled.get(key);
    if (!fn) {
      fn = this.ajv.compile({ $ref: ref });
      this.compiled.set(key, fn);
    }
    return fn;
  }

  /** Validates a YAML stream of manifests (documents separated by `---`). */
  validateYaml(text: string): Report {
    const objects: unknown[] = [];
    const issues: Issue[] = [];
    parseAllDocuments(text).forEach((d, i) => {
      if (d.errors.length > 0) {
        issues.push({ object: `document ${i + 1}`, path: '', message: d.errors[0]!.message });
        return;
      }
      const o = d.toJS() as unknown;
      if (o !== null && o !== undefined) objects.push(o);
    });
    const r = this.validateObjects(objects);
    return { objects: r.objects, issues: [...issues, ...r.issues] };
  }

  /** Validates parsed manifests. */
  validateObjects(objects: unknown[]): Report {
    const issues: Issue[] = [];
    const seen = new Set<string>();
    objects.forEach((o, i) => {
      if (!isObject(o)) {
        issues.push({ object: `document ${i + 1}`, path: '', message: 'is not an object' });
        return;
      }
      const kind = typeof o['kind'] === 'string' ? o['kind'] : '';
      const apiVersion = typeof o['apiVersion'] === 'string' ? o['apiVersion'] : '';
      const meta = isObject(o['metadata']) ? o['metadata'] : {};
      const name = typeof meta['name'] === 'string' ? meta['name'] : '';
      const label = kind && name ? `${kind}/${name}` : `document ${i + 1}`;
      const fn = this.validatorFor(`${apiVersion} ${kind}`);
      if (!fn) {
        issues.push({
          object: label,
          path: '',
          message: `no schema for apiVersion ${JSON.stringify(apiVersion)} kind ${JSON.stringify(kind)}`,
        });
        return;
      }
      if (!fn(o)) issues.push(...errorsOf(label, fn.errors ?? []));
      if (!name) issues.push({ object: label, path: '/metadata/name', message: 'is required' });
      const id = `${apiVersion} ${kind} ${String(meta['namespace'] ?? '')}/${name}`;
      if (seen.has(id)) issues.push({ object: label, path: '', message: 'is defined twice' });
      seen.add(id);
    });
    issues.push(...crossReferences(objects.filter(isObject)));
    return { objects: objects.length, issues };
  }
}

function errorsOf(object: string, errors: ErrorObject[]): Issue[] {
  const out: Issue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    let message = e.message ?? e.keyword;
    if (e.keyword === 'additionalProperties') {
      message = `unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
    }
    const key = `${e.instancePath} ${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ object, path: e.instancePath, message });
  }
  return out;
}

interface Workload {
  kind: string;
  name: string;
  labels: Record<string, string>;
  ports: Set<string>;
}

/** Pod templates of the workloads in the set. */
function workloads(objects: Json[]): Workload[] {
  const out: Workload[] = [];
  for (const o of objects) {
    const tpl = (o['spec'] as Json | undefined)?.['template'] as Json | undefined;
    if (
      !isObject(tpl) ||
      !['Deployment', 'StatefulSet', 'DaemonSet'].includes(o['kind'] as string)
    ) {
      continue;
    }
    const ports = new Set<string>();
    const containers = ((tpl['spec'] as Json | undefined)?.['containers'] ?? []) as Json[];
    for (const c of containers) {
      for (const p of (c['ports'] ?? []) as Json[]) {
        if (typeof p['name'] === 'string') ports.add(p['name']);
        if (typeof p['containerPort'] === 'number') ports.add(String(p['containerPort']));
      }
    }
    out.push({
      kind: o['kind'] as string,
      name: ((o['metadata'] as Json)['name'] as string) ?? '',
      labels: ((tpl['metadata'] as Json | undefined)?.['labels'] ?? {}) as Record<string, string>,
      ports,
    });
  }
  return out;
}

const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** References between the objects of the set, which no schema checks. */
function crossReferences(objects: Json[]): Issue[] {
  const issues: Issue[] = [];
  const wl = workloads(objects);
  const nameOf = (o: Json) =>
    `${o['kind'] as string}/${((o['metadata'] as Json)?.['name'] as string) ?? ''}`;
  for (const o of objects) {
    const spec = (o['spec'] ?? {}) as Json;
    if (o['kind'] === 'Service' && isObject(spec['selector'])) {
      const sel = spec['selector'] as Record<string, string>;
      const targets = wl.filter((w) => selects(sel, w.labels));
      if (targets.length === 0) {
        issues.push({
          object: nameOf(o),
          path: '/spec/selector',
          message: 'selects no pod template of the set',
        });
        continue;
      }
      ((spec['ports'] ?? []) as Json[]).forEach((p, i) => {
        const t = String(p['targetPort'] ?? p['port']);
        for (const w of targets) {
          if (!w.ports.has(t)) {
            issues.push({
              object: nameOf(o),
              path: `/spec/ports/${i}/targetPort`,
              message: `${t} is not a port of ${w.kind}/${w.name}`,
            });
          }
        }
      });
    }
    if (o['kind'] === 'PodDisruptionBudget') {
      const sel = ((spec['selector'] as Json | undefined)?.['matchLabels'] ?? {}) as Record<
        string,
        string
      >;
      if (!wl.some((w) => selects(sel, w.labels))) {
        issues.push({
          object: nameOf(o),
          path: '/spec/selector',
          message: 'selects no pod template of the set',
        });
      }
    }
    if (o['kind'] === 'ScaledObject') {
      const ref = (spec['scaleTargetRef'] ?? {}) as Json;
      const kind = (ref['kind'] as string | undefined) ?? 'Deployment';
      if (!wl.some((w) => w.kind === kind && w.name === ref['name'])) {
        issues.push({
          object: nameOf(o),
          path: '/spec/scaleTargetRef',
          message: `${kind}/${String(ref['name'])} is not in the set`,
        });
      }
    }
    const tpl = spec['template'] as Json | undefined;
    if (isObject(tpl) && isObject(tpl['spec'])) {
      ((tpl['spec']['containers'] ?? []) as Json[]).forEach((c, ci) => {
        const names = new Set(((c['ports'] ?? []) as Json[]).map((p) => p['name']));
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
          const pr = c[probe] as Json | undefined;
          const port = ((pr?.['httpGet'] ?? pr?.['tcpSocket']) as Json | undefined)?.['port'];
          if (typeof port === 'string' && !names.has(port)) {
            issues.push({
              object: nameOf(o),
              path: `/spec/template/spec/containers/${ci}/${probe}`,
              message: `names port ${JSON.stringify(port)}, which the container does not have`,
            });
          }
        }
      });
    }
  }
  return issues;
}

/** One line per issue, for people. */
export function formatIssues(issues: Issue[]): string {
  return issues.map((i) => `${i.object}${i.path ? ` ${i.path}` : ''}: ${i.message}`).join('\n');
}
