// k8s-validate: schema validation of Kubernetes manifests, offline.
//   helm template sluice deploy/helm/sluice | tsx tools/k8s-validate/src/main.ts -
//   tsx tools/k8s-validate/src/main.ts --schemas <dir> rendered.yaml other.yaml
// The schemas folder defaults to $K8S_SCHEMA_DIR (scripts/lib.sh ensure_deploy_tools sets it).
// Exit 0 when every object is valid, 1 when any is not (each problem on a line), 2 on bad usage.
import { readFileSync } from 'node:fs';
import { formatIssues, ManifestValidator } from './validate';

function main(argv: string[]): number {
  let schemas = process.env['K8S_SCHEMA_DIR'] ?? '';
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--schemas') schemas = argv[++i] ?? '';
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: k8s-validate [--schemas DIR] [FILE... | -]\n');
      return 0;
    } else files.push(a);
  }
  if (!schemas) {
    process.stderr.write('k8s-validate: no schemas: pass --schemas DIR or set K8S_SCHEMA_DIR\n');
    return 2;
  }
  const validator = new ManifestValidator(schemas);
  let failed = false;
  for (const f of files.length > 0 ? files : ['-']) {
    const text = readFileSync(f === '-' ? 0 : f, 'utf8');
    const report = validator.validateYaml(text);
    const name = f === '-' ? 'stdin' : f;
    if (report.objects === 0 && report.issues.length === 0) {
      process.stderr.write(`${name}: no objects\n`);
      failed = true;
    } else if (report.issues.length > 0) {
      process.stderr.write(
        `${name}: ${report.issues.length} problem(s) in ${report.objects} objects\n`,
      );
      process.stderr.write(`${formatIssues(report.issues)}\n`);
      failed = true;
    } else {
      process.stdout.write(`${name}: ${report.objects} objects valid\n`);
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
