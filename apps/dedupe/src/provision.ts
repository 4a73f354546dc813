import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import {
  ensureConsumer,
  ensureStream,
  type ConsumerSpec,
  type StreamSpec,
} from '@sluice/jetstream';
import { StreamMissingError } from './errors';

/**
 * Creates `spec` only when the stream does not exist. The raw stream belongs to ingestion, which
 * owns its settings; dedupe must never overwrite them, only make sure it can bind to the stream.
 */
export async function ensureStreamExists(jsm: JetStreamManager, spec: StreamSpec): Promise<void> {
  try {
    await jsm.streams.info(spec.name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound))
      throw err;
    await ensureStream(jsm, spec);
  }
}

/** Throws {@link StreamMissingError} unless `name` exists. */
export async function requireStream(jsm: JetStreamManager, name: string): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
      throw new StreamMissingError(name);
    throw err;
  }
}

export interface DedupeProvisioning {
  /** Raw streams to bind; `defaultRaw` is created when missing, the others must exist. */
  rawStreams: string[];
  defaultRaw: StreamSpec;
  clean: StreamSpec;
  dlq: StreamSpec;
  consumer: ConsumerSpec;
}

/** Idempotent, safe from every replica at once. */
export async function provisionDedupe(jsm: JetStreamManager, p: DedupeProvisioning): Promise<void> {
  await ensureStream(jsm, p.clean);
  await ensureStream(jsm, p.dlq);
  for (const name of p.rawStreams) {
    if (name === p.defaultRaw.name) await ensureStreamExists(jsm, p.defaultRaw);
    else await requireStream(jsm, name);
    await ensureConsumer(jsm, name, p.consumer);
  }
}
