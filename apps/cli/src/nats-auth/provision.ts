// `sluice nats-auth provision`: the admin creates every stream and durable consumer the services
// bind to when they connect with their own users (NATS_PROVISION=false).
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/nats-core';
import { ensureConsumer, ensureStream, isBindOnly } from '@sluice/jetstream';
import type { CliContext } from '../context';
import { renderTable } from '../table';
import { NatsAuthError } from './errors';
import { buildAccessModel, type PlannedStream } from './model';
import { parseProvision, PROVISION_USAGE } from './options';

/** What provisioning did to one stream or consumer. */
export type ProvisionOutcome = 'created' | 'exists' | 'updated' | 'missing';

export interface ProvisionRow {
  kind: 'stream' | 'consumer';
  stream: string;
  consumer: string | null;
  user: string | null;
  outcome: ProvisionOutcome;
}

async function exists(probe: () => Promise<unknown>, notFound: number): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === notFound) return false;
    throw err;
  }
}

/** A work-queue stream (the webhook deliveries): created as such, its limits updated with `update`. */
async function ensureWorkQueue(jsm: JetStreamManager, s: PlannedStream, update: boolean) {
  const limits = {
    subjects: [...s.subjects],
    max_age: nanos(s.maxAgeMs ?? 0),
    duplicate_window: nanos(s.duplicateWindowMs ?? 120_000),
  };
  if (update) {
    await jsm.streams.update(s.name, limits);
    return;
  }
  await jsm.streams.add({
    name: s.name,
    ...limits,
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: s.replicas ?? 1,
  });
}

export async function runProvision(args: string[], ctx: CliContext): Promise<number> {
  const f = parseProvision(args);
  if (f.help) {
    ctx.out.write(`${PROVISION_USAGE}\n`);
    return 0;
  }
  const model = buildAccessModel({ ...f, topology: ctx.topology });
  const nc = await ctx.nats();
  if (isBindOnly(nc)) {
    throw new NatsAuthError(
      'NATS_PROVISION=false: this connection only binds; provision as the admin user (admin.env of sluice nats-auth generate)',
    );
  }
  const jsm = await jetstreamManager(nc);
  const rows: ProvisionRow[] = [];
  for (const s of model.streams) {
    const there = await exists(() => jsm.streams.info(s.name), JetStreamApiCodes.StreamNotFound);
    let outcome: ProvisionOutcome = there ? 'exists' : 'missing';
    if (!f.dryRun && (!there || f.update)) {
      if (s.kv) {
        // A bucket's settings are the archiver's to judge (it logs a max_age unlike its TTL).
        if (!there) await new Kvm(nc).create(s.kv.bucket, { ttl: s.kv.ttlMs, history: 1 });
      } else if (s.workQueue) await ensureWorkQueue(jsm, s, there);
      else await ensureStream(jsm, s, { update: f.update });
      outcome = there ? 'updated' : 'created';
    }
    rows.push({ kind: 'stream', stream: s.name, consumer: null, user: null, outcome });
  }
  for (const c of model.consumers) {
    const there = await exists(
      () => jsm.consumers.info(c.stream, c.spec.durable),
      JetStreamApiCodes.ConsumerNotFound,
    ).catch((err: unknown) => {
      // In a dry run the stream itself may be missing too.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
        return false;
      throw err;
    });
    let outcome: ProvisionOutcome = there ? 'exists' : 'missing';
    if (!f.dryRun && (!there || f.update)) {
      await ensureConsumer(jsm, c.stream, c.spec);
      outcome = there ? 'updated' : 'created';
    }
    rows.push({
      kind: 'consumer',
      stream: c.stream,
      consumer: c.spec.durable,
      user: c.user,
      outcome,
    });
  }
  for (const w of model.warnings) ctx.err.write(`warning: ${w}\n`);
  const count = (o: ProvisionOutcome) => rows.filter((r) => r.outcome === o).length;
  if (f.json) {
    ctx.out.write(`${JSON.stringify({ dryRun: f.dryRun, rows })}\n`);
  } else {
    ctx.out.write(
      renderTable(
        [
          { header: 'KIND' },
          { header: 'STREAM' },
          { header: 'CONSUMER' },
          { header: 'USER' },
          { header: 'OUTCOME' },
        ],
        rows.map((r) => [
          r.kind,
          r.stream,
          r.consumer ?? '-',
          r.user ?? '-',
          f.dryRun && r.outcome === 'missing' ? 'would create' : r.outcome,
        ]),
      ) +
        `\n${count('created')} created, ${count('updated')} updated, ${count('exists')} left as they were` +
        (f.dryRun ? `, ${count('missing')} missing (dry run: nothing changed)` : '') +
        '\n',
    );
  }
  return 0;
}
